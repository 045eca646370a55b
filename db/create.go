package db

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"librecord/crypto"
	"librecord/db/atomicfile"
)

// DefaultSalon is the salon every new database starts with.
const DefaultSalon = "general"

func create(ctx context.Context, path string, passphrase []byte, opts CreateOptions) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s: %w", path, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("create database: %w", err)
	}
	if len(passphrase) == 0 {
		return errors.New("create database: empty passphrase")
	}
	ppKDF, pwKDF := crypto.DefaultPassphraseKDF(), crypto.DefaultPasswordKDF()
	if opts.KDF != nil {
		if err := opts.KDF.Validate(); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
		ppKDF, pwKDF = *opts.KDF, *opts.KDF
	}
	// Built under a hidden temporary name in the same directory, then
	// linked into place: link never replaces an existing file, and nobody
	// ever sees a half-built database at path.
	err := atomicfile.Create(path, 0o600, func(tmp string) error {
		defer removeCompanions(tmp)
		return build(ctx, tmp, passphrase, ppKDF, pwKDF)
	})
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	return nil
}

// removeCompanions removes the files SQLite may leave beside a database
// it wrote (none once it closed it cleanly).
func removeCompanions(path string) {
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}

// build fills a fresh, private file: schema, markers, keys, salon general.
func build(ctx context.Context, path string, passphrase []byte, ppKDF, pwKDF crypto.KDFParams) error {
	// Rollback-journal mode while building, so that every byte is in the
	// main file when it is linked into place; WAL is switched on last.
	conn, err := sql.Open("sqlite", fmt.Sprintf("file:%s?_pragma=foreign_keys(1)&_pragma=synchronous(FULL)", escapePath(path)))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	if err := migrate(ctx, conn, path, migrations, false); err != nil {
		return err
	}

	ppSalt, pwSalt := crypto.NewSalt(), crypto.NewSalt()
	data := crypto.NewKey()
	defer data.Erase()
	kek := crypto.DeriveKey(passphrase, ppSalt, ppKDF)
	wrapped := kek.Wrap(data, "")
	kek.Erase()
	identity := crypto.NewIdentity()
	pub := identity.Public().(ed25519.PublicKey)
	seed := identity.Seed()
	sealedSeed := data.Seal(seed, identityAD(pub))
	clear(seed)
	clear(identity)
	pwKey := crypto.NewKey()
	wrappedPwKey := data.Wrap(pwKey, passwordIDLabel)
	pwKey.Erase()
	ppJSON, _ := json.Marshal(ppKDF)
	pwJSON, _ := json.Marshal(pwKDF)
	now := time.Now().UnixMilli()

	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, kv := range []struct {
		k string
		v []byte
	}{
		{metaPassphraseKDF, ppJSON},
		{metaPassphraseSalt, ppSalt},
		{metaWrappedKey, wrapped},
		{metaPasswordKDF, pwJSON},
		{metaPasswordSalt, pwSalt},
		{metaIdentityPublic, pub},
		{metaIdentityPrivate, sealedSeed},
		{metaPasswordKey, wrappedPwKey},
		{metaCreatedAt, []byte(strconv.FormatInt(now, 10))},
	} {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, kv.k, kv.v); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO salons (name, created_at) VALUES (?, ?)`, DefaultSalon, now); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
		return err
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	return conn.Close()
}
