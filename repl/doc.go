// Package repl is the chat people live in: the command registry, the
// rendering of messages, the outbox that keeps typed lines until they are
// acked, and the reconnect state machine (resume within the window, then
// log in again). It talks to the network through the small Session
// interface (net/client implements it) and to the person through the
// Terminal interface, so that all of it is tested without a terminal or a
// socket. LinerTerminal puts github.com/peterh/liner at the edge.
//
// RunInteractive runs the chat on a terminal; RunScript is the scripted
// use (lines in, messages out) for bots and cron jobs.
package repl
