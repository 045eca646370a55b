package server

import (
	"errors"
	"fmt"
	stdnet "net"
	"os"
	"syscall"
	"testing"
)

func TestAcceptRetryable(t *testing.T) {
	wrap := func(e error) error {
		return &stdnet.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", e)}
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if !acceptRetryable(wrap(e)) {
			t.Errorf("%v: the server should wait and accept again", e)
		}
	}
	for _, err := range []error{wrap(syscall.EINVAL), stdnet.ErrClosed, errors.New("other"), fmt.Errorf("x: %w", syscall.EBADF)} {
		if acceptRetryable(err) {
			t.Errorf("%v: not a passing shortage", err)
		}
	}
}
