// Package net is the Librecord wire (PROTOCOL.md sections 1 to 4), shared
// by both ends: frames of base64url portions (FrameReader, AppendFrame),
// the envelope writer, the request and answer bodies with one codec for
// both ends (Request.Encode and ParseRequest, Response.Encode and
// ParseResponse, as net/http's Request and Response serve client and
// server), the protocol's rules, each defined once (ValidName, ValidCid,
// CheckText, IsControl, DefaultPort and the limits), and sources (the
// grouping of peer addresses the per-source limits count by).
//
// Layering: this package imports nothing of Librecord but crypto, and
// never the database. Its sub-packages sit above: chat (the chat rules,
// over db), server (the server end of connections, calling chat) and
// client (the client end, which must not pull in SQLite). Because it is a
// leaf, db takes the name rule from here too (the host's `user add` and
// `salon add` refuse what the wire would), without a cycle:
//
//	main → commands → repl → net/client, net/server → net/chat → db → net → crypto
package net
