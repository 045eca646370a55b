package bench

import "syscall"

// childAttr has the kernel kill the server if bench dies first (Ctrl-C
// twice, SIGKILL): it never outlives the run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
