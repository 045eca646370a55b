//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package client

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKnownServersLockHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_servers")
	unlock, err := lockFile(path+".lock", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := LoadKnownServers(path)
	if err != nil {
		t.Fatal(err)
	}
	ks.lockWait = 50 * time.Millisecond
	if err := ks.Add("a.example", keyFor(1)); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("Add under another's lock: %v", err)
	}
	unlock()
	if err := ks.Add("a.example", keyFor(1)); err != nil {
		t.Fatalf("Add once the lock is released: %v", err)
	}
}
