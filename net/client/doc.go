// Package client is the client end of the Librecord wire protocol
// (PROTOCOL.md sections 2, 3, 5 and 6): it dials a server, exchanges hellos,
// checks the server's identity, logs in, matches answers to requests by
// "re", resumes a session on a new connection, says bye and erases the
// session keys. It knows sockets and envelopes but no chat policy: retrying,
// outboxes and reconnect timing belong to package repl, with one
// exception: Session.Passwd resumes and resends by itself, because a
// password change whose answer is lost would lock the person out.
//
// Most callers use Dial, then Session.Login, then the request methods
// (Send, Fetch, Salons, Who, Passwd) and Session.Bye. Trust, over the
// known-servers file (LoadKnownServers), decides whether a server's
// identity is acceptable. Every string a server sent goes through
// Printable before anyone shows it.
package client
