// Package net is the Librecord wire (PROTOCOL.md sections 1 to 3): frames of
// base64url portions, the envelope codec, the request and response bodies,
// and the server and client ends of a connection. It knows sockets and
// frames; the chat rules (who may do what) live in package chat, which the
// server side calls into.
package net
