package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	stdnet "net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"librecord/crypto"
	"librecord/db/atomicfile"
	lnet "librecord/net"
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
// Its methods are not safe for concurrent use by goroutines sharing one
// value; separate values (and separate processes) may update the same
// file at once: Add and Remove hold a lock on it (see Add).
type KnownServers struct {
	path    string
	lines   []string // the file as read, comments included
	entries []knownEntry
	// lockWait bounds the wait for the lock of another updater.
	lockWait time.Duration
}

// DefaultLockWait is how long Add and Remove wait for another client's
// update of the same file before giving up: updates take milliseconds,
// so a lock held longer belongs to a process that is stuck.
const DefaultLockWait = 10 * time.Second

type knownEntry struct {
	addr        string
	fingerprint string
	line        int // index into lines
}

// LoadKnownServers reads the known-servers file at path. A missing file is
// an empty store (it is created by the first Add). A malformed line is an
// error naming the file and the line: a store that cannot be read is never
// treated as empty.
func LoadKnownServers(path string) (*KnownServers, error) {
	ks := &KnownServers{path: path, lockWait: DefaultLockWait}
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
		fp, err := crypto.ParseFingerprint(f[1])
		if err != nil {
			return bad("%v", err)
		}
		if len(f) == 3 {
			key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[2], "="))
			if err != nil || len(key) != ed25519.PublicKeySize {
				return bad("the key is not 32 bytes of base64")
			}
			if crypto.Fingerprint(key) != fp {
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
	got := crypto.Fingerprint(pub)
	if subtle.ConstantTimeCompare([]byte(got), []byte(e.fingerprint)) == 1 {
		return TrustMatch, nil
	}
	return TrustMismatch, &KeyMismatchError{Addr: a, Stored: e.fingerprint, Got: got, Path: ks.path, Line: e.line + 1}
}

// Add pins pub for addr and writes the file atomically (a temporary file in
// the same directory, synced, then renamed over the old one; mode 0600,
// directory created 0700 if missing). The update holds an exclusive lock
// (flock) on a lock file beside the data file, named like it with ".lock"
// added, and reads the file again under it: entries another client added
// meanwhile are kept, even when both pin at the same moment. When the file
// is a symbolic link, its target is updated (the lock file and the
// temporary file go beside the target) and the link stays. Adding the key
// already pinned is a no-op; an address pinned to another key is a
// *KeyMismatchError: remove it first.
func (ks *KnownServers) Add(addr string, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("identity key is not an Ed25519 public key")
	}
	a, err := normaliseAddr(addr)
	if err != nil {
		return err
	}
	return ks.update(func() ([]string, error) {
		switch st, err := ks.Check(a, pub); st {
		case TrustMatch:
			return nil, nil
		case TrustMismatch:
			return nil, err
		}
		lines := ks.lines
		if len(lines) == 0 {
			lines = []string{"# librecord known servers: address, identity fingerprint, identity key (see docs/protocol.md)"}
		}
		return append(lines[:len(lines):len(lines)], a+" "+crypto.Fingerprint(pub)+" "+base64.RawStdEncoding.EncodeToString(pub)), nil
	})
}

// Remove forgets addr and writes the file atomically, under the same lock
// as Add. Removing an unknown address is a no-op.
func (ks *KnownServers) Remove(addr string) error {
	a, err := normaliseAddr(addr)
	if err != nil {
		return err
	}
	return ks.update(func() ([]string, error) {
		// Every line of addr goes, duplicates with the same key included.
		var kept []string
		dropped := false
		for _, l := range ks.lines {
			if f := strings.Fields(l); len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
				if na, err := normaliseAddr(f[0]); err == nil && na == a {
					dropped = true
					continue
				}
			}
			kept = append(kept, l)
		}
		if !dropped {
			return nil, nil
		}
		return kept, nil
	})
}

// update reloads the store under the file's lock, asks change for the new
// lines (nil: nothing to write) and writes them.
func (ks *KnownServers) update(change func() ([]string, error)) error {
	target, err := resolveLink(ks.path)
	if err != nil {
		return fmt.Errorf("known servers file %s: %w", ks.path, err)
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	wait := ks.lockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	unlock, err := lockFile(target+".lock", wait)
	if err != nil {
		return err
	}
	defer unlock()
	fresh, err := LoadKnownServers(ks.path)
	if err != nil {
		return err
	}
	fresh.lockWait = ks.lockWait
	*ks = *fresh
	lines, err := change()
	if err != nil || lines == nil {
		return err
	}
	return ks.write(target, lines)
}

// ResolveLink returns the file that path names once symbolic links are
// followed, as known_servers is updated: the file to replace so that a
// link stays a link (for other files a client rewrites, such as a
// password file).
func ResolveLink(path string) (string, error) { return resolveLink(path) }

// resolveLink returns the file that path names once symbolic links are
// followed: the file to replace. A link whose target does not exist yet
// is followed by hand (filepath.EvalSymlinks refuses it), so that the
// first Add creates the target and keeps the link.
func resolveLink(path string) (string, error) {
	real, err := filepath.EvalSymlinks(path)
	if err == nil {
		return real, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	p := path
	for range 40 { // the kernel's own bound on links in a path
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil // the file (or the link's target) is still to create
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		to, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(p), to)
		}
		p = to
	}
	return "", errors.New("too many levels of symbolic links")
}

// write replaces the file target (ks.path, or the file its link points
// to) with lines, atomically, and reloads the store. The caller holds the
// lock.
func (ks *KnownServers) write(target string, lines []string) error {
	data := strings.Join(lines, "\n") + "\n"
	err := atomicfile.Write(target, 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, data)
		return err
	})
	if err != nil {
		return fmt.Errorf("write known servers: %w", err)
	}
	fresh := &KnownServers{path: ks.path, lockWait: ks.lockWait}
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
		host, port = addr, lnet.DefaultPort
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
