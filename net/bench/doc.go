// Package bench is the load driver of `librecord bench`: real clients
// (net/client: hello, login, portions, signatures, durable acks,
// long-polls at the protocol's cadence) driving a Librecord server in one
// of a few shapes of load, with the server's CPU and memory read from its
// process accounting (/proc, Linux) apart from the clients', and the
// protocol's crypto floor measured in the same run.
//
// Target is where the load goes: a server started as a child process on a
// temporary database (StartChild) or a running one given by its host.
// Run drives one Shape against a Target and returns its Result.
package bench
