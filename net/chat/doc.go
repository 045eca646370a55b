// Package chat holds Librecord's chat rules (PROTOCOL.md sections 3 and 4):
// sessions (the manual's "temporary file"), login, send with group commit,
// fetch with long-poll, salons, who, bye, timeouts, announcements and the
// limits that apply to them. It knows nothing of sockets, frames or
// envelopes: package server opens envelopes, parses nothing but frames, and
// hands each request body to a Hub, which answers through a Reply.
//
// Most callers want New, then Hub.NewSession for each hello,
// ParseRequest and Hub.Handle for each opened envelope, and Hub.Shutdown.
package chat
