//go:build unix

package repl

import "syscall"

// redraw has liner redraw its prompt and partial line: it does so on a
// window change (FINDINGS.md).
func redraw() { syscall.Kill(syscall.Getpid(), syscall.SIGWINCH) }
