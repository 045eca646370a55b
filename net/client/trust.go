package client

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"librecord/crypto"
)

// ErrNotTrusted is returned when the person declines a new server's key.
var ErrNotTrusted = errors.New("server not trusted: not connecting")

// UnknownServerError is returned for a first contact with nobody to ask
// and no --trust fingerprint.
type UnknownServerError struct {
	Addr, Fingerprint string
}

func (e *UnknownServerError) Error() string {
	return fmt.Sprintf("unknown server %s, identity fingerprint %s: there is nobody to ask whether to trust it; "+
		"check the fingerprint with the host (librecord serve prints it at start) and pass --trust %s",
		e.Addr, e.Fingerprint, e.Fingerprint)
}

// PinnedMismatchError is returned when the server does not show the key
// given with --trust.
type PinnedMismatchError struct {
	Addr, Pinned, Seen string
}

func (e *PinnedMismatchError) Error() string {
	return fmt.Sprintf("server %s shows identity fingerprint %s, not the %s given with --trust: refusing to connect",
		e.Addr, e.Seen, e.Pinned)
}

// Trust decides whether a server identity is acceptable (PROTOCOL.md 6):
// the key pinned in the known-servers file, else the fingerprint given with
// --trust, else what the person answers; never a changed key.
type Trust struct {
	Known *KnownServers
	// Pinned is a fingerprint the user gave (--trust): the server must
	// show exactly this key.
	Pinned string
	// Ask asks the person whether to trust a first-contact key. Nil when
	// there is nobody to ask (scripted use).
	Ask func(addr, fingerprint string) (bool, error)
}

// Check implements Config.CheckIdentity. A changed key is a
// *KeyMismatchError, whose message says how to remove the old
// entry.
func (t Trust) Check(addr string, identity ed25519.PublicKey) error {
	fp := crypto.Fingerprint(identity)
	if t.Pinned != "" && !pinnedIs(t.Pinned, fp) {
		return &PinnedMismatchError{Addr: addr, Pinned: t.Pinned, Seen: fp}
	}
	status, err := t.Known.Check(addr, identity)
	switch {
	case status == TrustMatch:
		return nil
	case err != nil:
		return err
	}
	if t.Pinned == "" {
		if t.Ask == nil {
			return &UnknownServerError{Addr: addr, Fingerprint: fp}
		}
		ok, err := t.Ask(addr, fp)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotTrusted
		}
	}
	if err := t.Known.Add(addr, identity); err != nil {
		return fmt.Errorf("record the server's identity: %w", err)
	}
	return nil
}

// pinnedIs reports whether the fingerprint the user pinned (in any form
// crypto.ParseFingerprint accepts) is fp. Fingerprints are public: a plain
// comparison of the normalised forms is enough.
func pinnedIs(pinned, fp string) bool {
	p, err := crypto.ParseFingerprint(pinned)
	return err == nil && p == fp
}
