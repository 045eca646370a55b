//go:build !unix

package repl

// redraw is a no-op where there is no SIGWINCH: the partial line is
// redrawn at the next key.
func redraw() {}
