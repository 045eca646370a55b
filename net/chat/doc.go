// Package chat holds Librecord's chat rules (PROTOCOL.md sections 3 and 4):
// sessions (the manual's "temporary file"), login, send with group commit,
// fetch with long-poll, salons, who, passwd, bye, timeouts, announcements and the
// limits that apply to them. It knows nothing of sockets, frames or
// envelopes: package server opens envelopes, parses each request body
// with net.ParseRequest, and hands it to a Hub, which answers through a
// Reply with bodies written by net.Response.Encode.
//
// Most callers want New, then Hub.NewSession for each hello,
// net.ParseRequest and Hub.Handle for each opened envelope, and Hub.Shutdown.
package chat
