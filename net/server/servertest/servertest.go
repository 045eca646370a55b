// Package servertest runs the real Librecord server in-process for the
// tests of other packages: a real SQLite file created with the insecure
// test KDF, served on a fresh 127.0.0.1 port until the test ends. It is
// for tests only, in the way net/http/httptest is.
package servertest

import (
	"context"
	"io"
	"log/slog"
	stdnet "net"
	"path/filepath"
	"testing"
	"time"

	"librecord/crypto"
	"librecord/db"
	"librecord/net/server"
)

// NewDB opens the database at path, first creating it with the salon
// general and the near-free test KDF if it does not exist. The caller
// closes it (Start does so when the test ends).
func NewDB(t testing.TB, path string) *db.DB {
	t.Helper()
	kdf := crypto.InsecureTestKDF()
	d, err := db.OpenOrCreate(context.Background(), path, []byte("host passphrase"), db.CreateOptions{KDF: &kdf})
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	return d
}

// TempDB is NewDB on a fresh file in a temporary directory of t.
func TempDB(t testing.TB) *db.DB {
	t.Helper()
	return NewDB(t, filepath.Join(t.TempDir(), "librecord.db"))
}

// Start serves d with cfg on a fresh 127.0.0.1 port, its log discarded,
// and returns the address. When the test ends it shuts the server down and
// closes d.
func Start(t testing.TB, d *db.DB, cfg server.Config) string {
	t.Helper()
	srv, err := server.New(d, d.Identity(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		d.Close()
	})
	return ln.Addr().String()
}
