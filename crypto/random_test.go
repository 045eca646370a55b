package crypto

import (
	"bytes"
	"encoding/base64"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestNewSaltAndID(t *testing.T) {
	a, b := NewSalt(), NewSalt()
	if len(a) != SaltSize || len(b) != SaltSize || bytes.Equal(a, b) {
		t.Fatalf("salts %x and %x: want two different ones of %d bytes", a, b, SaltSize)
	}
	x, y := NewID(), NewID()
	for _, id := range []string{x, y} {
		raw, err := base64.RawURLEncoding.Strict().DecodeString(id)
		if len(id) != 22 || err != nil || len(raw) != 16 {
			t.Fatalf("id %q: want 22 characters of base64url for 16 bytes (%v)", id, err)
		}
	}
	if x == y {
		t.Fatalf("two ids alike: %q", x)
	}
}

// randomOutside are the packages outside crypto allowed to import
// crypto/rand: test tooling whose randomness protects nothing.
var randomOutside = map[string]string{
	"net/bench": "names a benchmark run and its throwaway database's passphrase",
}

// TestOnlyCryptoDrawsRandomness: the product's randomness (keys, salts,
// nonces, passwords, client message ids) is drawn in this package only
// (STYLE.md: one source, one way of failing), so no other package of
// the module imports crypto/rand outside its tests.
func TestOnlyCryptoDrawsRandomness(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "crypto" || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		if _, ok := randomOutside[filepath.ToSlash(filepath.Dir(rel))]; ok {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "crypto/rand" {
				t.Errorf("%s imports crypto/rand: draw randomness through package crypto (NewKey, NewSalt, NewID, ...)", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("only %d files checked under %s: the walk is broken", checked, root)
	}
}
