//go:build !linux

package bench

import (
	"syscall"
	"time"
)

func childAttr() *syscall.SysProcAttr { return nil }

// threadCPU is not available here: the floor falls back to wall time.
func threadCPU() (time.Duration, bool) { return 0, false }
