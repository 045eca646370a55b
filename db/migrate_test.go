package db

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
)

// TestConcurrentMigration: four handles (as four processes would) find the
// same pending, non-idempotent migration at once; it is applied exactly
// once and every one of them succeeds.
func TestConcurrentMigration(t *testing.T) {
	ctx := context.Background()
	path := testCreate(t)
	// Every embedded migration (the file is at the latest), then a test one.
	src := fstest.MapFS{}
	entries, err := fs.ReadDir(migrations, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := fs.ReadFile(migrations, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		src[e.Name()] = &fstest.MapFile{Data: data}
	}
	next := latestVersion() + 1
	src[fmt.Sprintf("%05d_test.sql", next)] = &fstest.MapFile{Data: []byte(`-- +goose Up
ALTER TABLE users ADD COLUMN note TEXT;
INSERT INTO meta (key, value) VALUES ('applied', x'01')
    ON CONFLICT (key) DO UPDATE SET value = value || x'01';
-- +goose Down
ALTER TABLE users DROP COLUMN note;
`)}
	const n = 4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := sql.Open("sqlite", dsn(path, DefaultBusyTimeout, true))
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			errs <- migrate(ctx, conn, path, src, true)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	ro, err := sql.Open("sqlite", roDSN(path, DefaultBusyTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	applied, err := metaValue(ctx, ro, "applied")
	if err != nil {
		t.Fatal(err)
	}
	var version int64
	if err := ro.QueryRow(`SELECT max(version_id) FROM goose_db_version`).Scan(&version); err != nil || version != next {
		t.Fatalf("version %d, %v", version, err)
	}
	if len(applied) != 1 {
		t.Fatalf("migration applied %d times", len(applied))
	}
	if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
	if names := dirNames(t, filepath.Dir(path)); !onlyCompanions(names) {
		t.Fatalf("files: %v", names)
	}
}
