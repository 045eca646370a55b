package server

import stdnet "net"

// ServeConn serves the protocol on a connection accepted elsewhere (a
// WebSocket from package web), with the same limits as a connection Serve
// accepts; the source is nc.RemoteAddr(). It returns at once.
//
// Stand-in for the web branch: the srv branch adds the real ServeConn
// (per-source limits included) to server.go; this file is dropped at merge.
func (s *Server) ServeConn(nc stdnet.Conn) { s.accept(nc) }
