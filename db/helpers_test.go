package db

import (
	"database/sql"
	"testing"

	"librecord/crypto"
)

// writeForeignSQLite makes an SQLite file that is not ours (WAL mode, as
// many applications leave theirs).
func writeForeignSQLite(t *testing.T, path string) {
	t.Helper()
	c, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Exec(`CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me')`); err != nil {
		t.Fatal(err)
	}
}

// bumpSchema records a migration version this binary does not know.
func bumpSchema(t *testing.T, path string, version int64) {
	t.Helper()
	c, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, 1)`, version); err != nil {
		t.Fatal(err)
	}
}

// hashPlain is the bare Argon2id identifier, before the data-key HMAC.
func hashPlain(d *DB, password string) []byte {
	return crypto.HashPassword(password, d.pwSalt, d.pwKDF)
}
