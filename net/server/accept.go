package server

import (
	"errors"
	"syscall"
)

// acceptRetryable reports whether an accept error is a shortage that passes
// (descriptors, for this process or the whole system; kernel buffers or
// memory): the server waits and accepts again instead of stopping.
func acceptRetryable(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
