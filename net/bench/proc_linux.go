package bench

import (
	"syscall"
	"time"
)

// childAttr has the kernel kill the server if bench dies first (Ctrl-C
// twice, SIGKILL): it never outlives the run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// threadCPU is the CPU time the calling thread used so far (the caller
// locks its goroutine to the thread): the crypto floor is CPU time, like
// the server's, and so holds on a machine busy with other work, where
// wall-clock time would count the waits for a core.
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// rusageThread is RUSAGE_THREAD (Linux 2.6.26+).
const rusageThread = 1
