//go:build conformance_deviations

// Deviations of the server from PROTOCOL.md found by this suite. Each test
// here fails against the current server; run them with
//
//	go test -tags conformance_deviations ./net/conformance/
//
// and remove the build tag once the server is fixed.

package conformance

import (
	"strings"
	"testing"
	"time"
)

// TestRemovedUserParkedFetch: PROTOCOL.md section 4: "a parked fetch of a
// user who lost access to the salon (revoke, removal) answers `forbidden`
// when it wakes, and never carries a message from it." The server answers
// the parked fetch of a removed user with error `auth` ("your account or
// password changed: log in again") and closes the connection. (`auth` is
// only defined for a wrong password, 3.1.) Nothing leaks, so the fix may
// equally be in PROTOCOL.md.
func TestRemovedUserParkedFetch(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverConfig{})
	a := connect(t, s, "alice")
	b := connect(t, s, "bob")
	last := b.send("general", "before")
	parked := a.request(obj{"op": "fetch", "salon": "general", "after": last, "wait_ms": 20000})
	a.doOK(obj{"op": "salons"})
	s.admin("", "user", "remove", "alice")
	b.send("general", "secret after removal")
	m, err := a.tryRead(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(m.bodyRaw), "secret") {
		t.Fatalf("removed user got the message: %s", m.bodyRaw)
	}
	if re, _ := m.body.intField("re"); re != parked {
		t.Fatalf("unexpected %s", m.bodyRaw)
	}
	checkError(t, m, "forbidden")
}
