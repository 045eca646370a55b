package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	stdnet "net"
	"os"
	"path/filepath"
	"strings"
)

// The known-servers file (PROTOCOL.md section 6) pins each server address
// to its identity key, trust on first use. It is a text file, one server a
// line, fields separated by spaces or tabs:
//
//	# comment lines and empty lines are kept as they are
//	chat.example.org:7447 SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg
//	[2001:db8::1]:7447 SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw
//
// Field 1 is the address as host:port (host lowercased, port 7447 added
// when missing). Field 2 is the identity fingerprint as `librecord serve`
// prints it. Field 3, optional, is the 32-byte Ed25519 identity public key
// in standard base64 without padding; when present it must match field 2.
// A line with only an address and a fingerprint is how an administrator
// pins a server by hand.

// KnownServersFile is the file name of the known-servers store inside the
// client's configuration directory.
const KnownServersFile = "known_servers"

// defaultPort is PROTOCOL.md's default port, added to addresses without one.
const defaultPort = "7447"

// TrustStatus is what Check says about a server's identity key.
type TrustStatus int

const (
	// TrustUnknown: first contact, the address is not in the file. Show the
	// fingerprint and ask, or take it from a flag, then call Add.
	TrustUnknown TrustStatus = iota
	// TrustMatch: the address is known with this very key.
	TrustMatch
	// TrustMismatch: the address is known with another key. Refuse to
	// connect; Check's *KeyMismatchError says how to remove the old entry.
	TrustMismatch
)

func (s TrustStatus) String() string {
	switch s {
	case TrustUnknown:
		return "unknown"
	case TrustMatch:
		return "match"
	case TrustMismatch:
		return "mismatch"
	}
	return fmt.Sprintf("TrustStatus(%d)", int(s))
}

// KeyMismatchError is Check's error for a known address whose server now
// shows another identity key. Its Error text is the warning to show.
type KeyMismatchError struct {
	Addr   string // normalised address
	Stored string // fingerprint in the file
	Got    string // fingerprint the server showed
	Path   string // the known-servers file
	Line   int    // line of the stored entry, from 1
}

func (e *KeyMismatchError) Error() string {
	return fmt.Sprintf("the identity of %s has changed: %s pins %s but the server shows %s; "+
		"this is either an attack or a server that lost its database. "+
		"If you trust the new key, %s", e.Addr, e.Path, e.Stored, e.Got, RemoveHint(e.Path, e.Addr, e.Line))
}

// RemoveHint tells a person how to forget the entry of addr (at line, when
// known, from 1) in the known-servers file at path.
func RemoveHint(path, addr string, line int) string {
	where := ""
	if line > 0 {
		where = fmt.Sprintf(" (line %d)", line)
	}
	return fmt.Sprintf("delete the line for %s%s from %s, then connect again", addr, where, path)
}

// KnownServers is the client's known-servers store, loaded from one file.
// Its methods are not safe for concurrent use.
type KnownServers struct {
	path    string
	lines   []string // the file as read, comments included
	entries []knownEntry
}

type knownEntry struct {
	addr        string
	fingerprint string
	line        int // index into lines
}

// DefaultKnownServersPath returns the known-servers file in the user's
// configuration directory ($XDG_CONFIG_HOME/librecord/known_servers, or
// ~/.config/librecord/known_servers).
func DefaultKnownServersPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the configuration directory: %w", err)
	}
	return filepath.Join(dir, "librecord", KnownServersFile), nil
}

// LoadKnownServers reads the known-servers file at path. A missing file is
// an empty store (it is created by the first Add). A malformed line is an
// error naming the file and the line: a store that cannot be read is never
// treated as empty.
func LoadKnownServers(path string) (*KnownServers, error) {
	ks := &KnownServers{path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ks, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known servers: %w", err)
	}
	if err := ks.parse(data); err != nil {
		return nil, err
	}
	return ks, nil
}

func (ks *KnownServers) parse(data []byte) error {
	text := strings.TrimSuffix(string(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))), "\n")
	if text == "" {
		return nil
	}
	ks.lines = strings.Split(text, "\n")
	for i, l := range ks.lines {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		bad := func(format string, a ...any) error {
			return fmt.Errorf("known servers file %s, line %d: %s (fix or delete that line)", ks.path, i+1, fmt.Sprintf(format, a...))
		}
		if len(f) < 2 || len(f) > 3 {
			return bad("want an address, a fingerprint and optionally a key, got %d fields", len(f))
		}
		addr, err := normaliseAddr(f[0])
		if err != nil {
			return bad("%v", err)
		}
		fp, err := ParseFingerprint(f[1])
		if err != nil {
			return bad("%v", err)
		}
		if len(f) == 3 {
			key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[2], "="))
			if err != nil || len(key) != ed25519.PublicKeySize {
				return bad("the key is not 32 bytes of base64")
			}
			if Fingerprint(key) != fp {
				return bad("the key does not match the fingerprint")
			}
		}
		if prev, ok := ks.find(addr); ok {
			if prev.fingerprint != fp {
				return bad("%s is already listed on line %d with another key", addr, prev.line+1)
			}
			continue
		}
		ks.entries = append(ks.entries, knownEntry{addr: addr, fingerprint: fp, line: i})
	}
	return nil
}

func (ks *KnownServers) find(addr string) (knownEntry, bool) {
	for _, e := range ks.entries {
		if e.addr == addr {
			return e, true
		}
	}
	return knownEntry{}, false
}

// Path returns the file the store reads and writes.
func (ks *KnownServers) Path() string { return ks.path }

// Lookup returns the fingerprint pinned for addr, if any.
func (ks *KnownServers) Lookup(addr string) (fingerprint string, ok bool) {
	a, err := normaliseAddr(addr)
	if err != nil {
		return "", false
	}
	e, ok := ks.find(a)
	return e.fingerprint, ok
}

// Check compares the identity key a server at addr showed with the store.
// On TrustMismatch the error is a *KeyMismatchError carrying the stored
// fingerprint and the removal hint; otherwise it is nil, unless addr is not
// a valid host[:port].
func (ks *KnownServers) Check(addr string, pub ed25519.PublicKey) (TrustStatus, error) {
	a, err := normaliseAddr(addr)
	if err != nil {
		return TrustUnknown, err
	}
	e, ok := ks.find(a)
	if !ok {
		return TrustUnknown, nil
	}
	got := Fingerprint(pub)
	if subtle.ConstantTimeCompare([]byte(got), []byte(e.fingerprint)) == 1 {
		return TrustMatch, nil
	}
	return TrustMismatch, &KeyMismatchError{Addr: a, Stored: e.fingerprint, Got: got, Path: ks.path, Line: e.line + 1}
}

// Add pins pub for addr and writes the file atomically (a temporary file in
// the same directory, synced, then renamed over the old one; mode 0600,
// directory created 0700 if missing). The file is read again first, so
// entries another client added meanwhile are kept. Adding the key already
// pinned is a no-op; an address pinned to another key is a
// *KeyMismatchError: remove it first.
func (ks *KnownServers) Add(addr string, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("identity key is not an Ed25519 public key")
	}
	a, err := normaliseAddr(addr)
	if err != nil {
		return err
	}
	fresh, err := LoadKnownServers(ks.path)
	if err != nil {
		return err
	}
	*ks = *fresh
	switch st, err := ks.Check(a, pub); st {
	case TrustMatch:
		return nil
	case TrustMismatch:
		return err
	}
	lines := ks.lines
	if len(lines) == 0 {
		lines = []string{"# librecord known servers: address, identity fingerprint, identity key (see docs/protocol.md)"}
	}
	lines = append(lines[:len(lines):len(lines)], a+" "+Fingerprint(pub)+" "+base64.RawStdEncoding.EncodeToString(pub))
	return ks.write(lines)
}

// Remove forgets addr and writes the file atomically. Removing an unknown
// address is a no-op.
func (ks *KnownServers) Remove(addr string) error {
	a, err := normaliseAddr(addr)
	if err != nil {
		return err
	}
	fresh, err := LoadKnownServers(ks.path)
	if err != nil {
		return err
	}
	*ks = *fresh
	// Every line of addr goes, duplicates with the same key included.
	var drop []int
	for i, l := range ks.lines {
		if f := strings.Fields(l); len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			if na, err := normaliseAddr(f[0]); err == nil && na == a {
				drop = append(drop, i)
			}
		}
	}
	if len(drop) == 0 {
		return nil
	}
	var kept []string
	for i, l := range ks.lines {
		skip := false
		for _, d := range drop {
			skip = skip || d == i
		}
		if !skip {
			kept = append(kept, l)
		}
	}
	return ks.write(kept)
}

// write replaces the file with lines, atomically, and reloads the store.
func (ks *KnownServers) write(lines []string) error {
	dir := filepath.Dir(ks.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(ks.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write known servers: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	data := strings.Join(lines, "\n") + "\n"
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write known servers: %w", err)
	}
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write known servers: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write known servers: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write known servers: %w", err)
	}
	if err := os.Rename(tmp.Name(), ks.path); err != nil {
		return fmt.Errorf("write known servers: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not all systems allow it
		d.Close()
	}
	fresh := &KnownServers{path: ks.path}
	if err := fresh.parse([]byte(data)); err != nil {
		return err
	}
	*ks = *fresh
	return nil
}

// normaliseAddr lowercases the host and adds the default port when missing.
func normaliseAddr(addr string) (string, error) {
	host, port, err := stdnet.SplitHostPort(addr)
	if err != nil {
		// No port: a bare host name or IPv4, or an IPv6 address with or
		// without brackets.
		host, port = addr, defaultPort
		if strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]") {
			host = addr[1 : len(addr)-1]
		}
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && stdnet.ParseIP(host) == nil) {
			return "", fmt.Errorf("server address %q is not host:port", addr)
		}
	}
	if host == "" || port == "" || strings.ContainsAny(host, " \t#") {
		return "", fmt.Errorf("server address %q is not host:port", addr)
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("server address %q has a bad port", addr)
		}
	}
	return stdnet.JoinHostPort(strings.ToLower(host), port), nil
}

// NormaliseServerAddr returns addr as the known-servers file keys it:
// host:port with the host lowercased and port 7447 added when missing.
func NormaliseServerAddr(addr string) (string, error) { return normaliseAddr(addr) }

// ErrBadFingerprint is returned by ParseFingerprint.
var ErrBadFingerprint = errors.New(`fingerprint is not "SHA256:" followed by 43 characters of base64, as librecord serve prints it`)

// ParseFingerprint checks a fingerprint typed by a person (e.g. a --trust
// flag) and returns it in the form Fingerprint prints: "SHA256:" and the
// unpadded standard base64 of 32 bytes. Trailing "=" are accepted.
func ParseFingerprint(s string) (string, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, "SHA256:")
	if !ok {
		return "", ErrBadFingerprint
	}
	sum, err := base64.RawStdEncoding.Strict().DecodeString(strings.TrimRight(rest, "="))
	if err != nil || len(sum) != sha256.Size {
		return "", ErrBadFingerprint
	}
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum), nil
}

// FingerprintMatches reports whether fingerprint (as ParseFingerprint
// accepts it) is the fingerprint of pub.
func FingerprintMatches(fingerprint string, pub ed25519.PublicKey) bool {
	fp, err := ParseFingerprint(fingerprint)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(fp), []byte(Fingerprint(pub))) == 1
}
