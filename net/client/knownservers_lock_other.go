//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package client

import "time"

// lockFile does nothing where flock is not available: updates stay atomic
// (rename), but two clients pinning at the same moment may lose one pin.
func lockFile(path string, wait time.Duration) (unlock func(), err error) {
	return func() {}, nil
}
