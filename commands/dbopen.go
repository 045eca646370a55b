package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"librecord/crypto"
	"librecord/db"
)

// passphraseEnv is the environment variable holding the host passphrase.
const passphraseEnv = "LIBRECORD_PASSPHRASE"

// errNoPassphrase names the three ways to give the passphrase.
var errNoPassphrase = errors.New("no passphrase: give --passphrase-file FILE, set " + passphraseEnv + ", or run in a terminal to be asked")

// openDB opens the existing database named by --db, asking for the
// passphrase only once the file is known to be a Librecord database.
func openDB(c *cli.Context) (*db.DB, error) {
	path := c.String("db")
	if err := db.Check(c.Context, path); err != nil {
		return nil, dbHint(err)
	}
	pass, err := readPassphrase(c, fmt.Sprintf("Passphrase for %s: ", path), "", passphraseFileFlag)
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	d, err := db.Open(c.Context, path, pass)
	if err != nil {
		return nil, dbHint(err)
	}
	warnRotation(c, d)
	return d, nil
}

// warnRotation says so when the database holds an interrupted key
// rotation (it works meanwhile; passphrase --rotate-key finishes it).
func warnRotation(c *cli.Context, d *db.DB) {
	if d.RotationUnfinished() && c.Command.Name != "passphrase" {
		fmt.Fprintf(c.App.ErrWriter, "librecord: warning: the key rotation of %s was interrupted; stop serve and run `librecord passphrase --rotate-key` to finish it\n", d.Path())
	}
}

// withDB opens --db as openDB does, runs f on it and closes it. Errors of f
// get the admin hints.
func withDB(c *cli.Context, f func(d *db.DB) error) error {
	d, err := openDB(c)
	if err != nil {
		return err
	}
	defer d.Close()
	return adminHint(f(d))
}

// openOrCreateDB opens --db, creating it first if it does not exist
// (serve's first run): the passphrase is then asked twice at a terminal.
func openOrCreateDB(c *cli.Context) (*db.DB, error) {
	path := c.String("db")
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		return openDB(c)
	}
	pass, err := createDB(c)
	if errors.Is(err, db.ErrExists) {
		return openDB(c) // another process created it meanwhile
	}
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	fmt.Fprintf(c.App.ErrWriter, "librecord: created %s with salon %q and no users yet\n", path, db.DefaultSalon)
	fmt.Fprintf(c.App.ErrWriter, "librecord: next, in another terminal: librecord --db %s user add PSEUDO --salon %s\n", path, db.DefaultSalon)
	d, err := db.Open(c.Context, path, pass)
	return d, dbHint(err)
}

// createDB creates --db and returns the passphrase it was given.
func createDB(c *cli.Context) ([]byte, error) {
	path := c.String("db")
	if _, err := os.Lstat(path); err == nil {
		return nil, withHint(fmt.Errorf("%s: %w", path, db.ErrExists),
			"nothing was changed; to create another database, choose its file with --db")
	}
	pass, err := readPassphrase(c, fmt.Sprintf("New passphrase for %s: ", path), "Same passphrase again: ", passphraseFileFlag)
	if err != nil {
		return nil, err
	}
	if err := checkNewPassphrase(pass); err != nil {
		clear(pass)
		return nil, err
	}
	var opts db.CreateOptions
	if c.Bool("insecure-test-kdf") {
		kdf := crypto.InsecureTestKDF()
		opts.KDF = &kdf
	}
	if err := db.Create(c.Context, path, pass, opts); err != nil {
		clear(pass)
		return nil, dbHint(err)
	}
	return pass, nil
}

const passphraseFileFlag = "passphrase-file"

// MinPassphraseLength is the shortest host passphrase init, serve and
// passphrase accept for a new database or a change: it is what stands
// between a stolen file (or backup) and its messages.
const MinPassphraseLength = 10

// checkNewPassphrase refuses a new passphrase too short to protect anything.
func checkNewPassphrase(pass []byte) error {
	if utf8.RuneCount(pass) < MinPassphraseLength {
		return withHint(fmt.Errorf("the new passphrase is shorter than %d characters; nothing was changed", MinPassphraseLength),
			"choose a longer one: a few unrelated words make a strong, memorable passphrase")
	}
	return nil
}

// readPassphrase takes the passphrase from the file flag, else from
// LIBRECORD_PASSPHRASE, else from a hidden prompt when stdin is a terminal
// (asked twice when confirm is not empty).
func readPassphrase(c *cli.Context, prompt, confirm, fileFlag string) ([]byte, error) {
	if file := c.String(fileFlag); file != "" {
		return readSecretFile(file, "--"+fileFlag)
	}
	if fileFlag == passphraseFileFlag {
		if env := os.Getenv(passphraseEnv); env != "" {
			return []byte(env), nil
		}
	}
	return promptSecret(c, prompt, confirm, errNoPassphrase)
}

// readSecretFile reads a secret from a file: its first line, without the
// line end, must not be empty.
func readSecretFile(file, flag string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		rest := b[i+1:]
		b = b[:i]
		clear(rest)
	}
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("%s: %s is empty", flag, file)
	}
	return b, nil
}

// promptSecret asks at the terminal without echo; with no terminal on
// stdin it returns noTTY.
func promptSecret(c *cli.Context, prompt, confirm string, noTTY error) ([]byte, error) {
	f, ok := c.App.Reader.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, noTTY
	}
	ask := func(p string) ([]byte, error) {
		fmt.Fprint(c.App.ErrWriter, p)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.App.ErrWriter)
		return b, err
	}
	first, err := ask(prompt)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(first) == 0 {
		return nil, errors.New("empty passphrase")
	}
	if confirm == "" {
		return first, nil
	}
	second, err := ask(confirm)
	defer clear(second)
	if err != nil {
		clear(first)
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if !bytes.Equal(first, second) {
		clear(first)
		return nil, errors.New("the two passphrases differ; nothing was changed")
	}
	return first, nil
}

// dbHint attaches the obvious next step to the errors of opening a database.
func dbHint(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, db.ErrNoDatabase):
		return withHint(err, "run `librecord init` to create it, or point --db (or LIBRECORD_DB) at the right file")
	case errors.Is(err, db.ErrNotLibrecord):
		return withHint(err, "check --db (or LIBRECORD_DB): the file was left untouched")
	case errors.Is(err, db.ErrWrongPassphrase):
		return withHint(err, "nothing was written; check --passphrase-file or LIBRECORD_PASSPHRASE")
	case errors.Is(err, db.ErrSchemaTooNew):
		return withHint(err, "this database was written by a newer librecord: install it")
	case errors.Is(err, db.ErrExists):
		return withHint(err, "nothing was changed; to create another database, choose its file with --db")
	case errors.Is(err, db.ErrRotating):
		return withHint(err, "`librecord passphrase --rotate-key` is re-encrypting it: wait for it to finish, then use the new passphrase")
	case errors.Is(err, db.ErrKeyChanged):
		return withHint(err, "nothing was changed; another librecord process changed the passphrase meanwhile: run this again (with the new passphrase)")
	case errors.Is(err, db.ErrRotationUnfinished):
		return withHint(err, "nothing was changed; stop serve and run `librecord passphrase --rotate-key` to finish the rotation")
	case errors.Is(err, db.ErrInUse):
		return withHint(err, "nothing was changed; stop `librecord serve` (and any other librecord command) on this database, then run this again")
	}
	return err
}

// adminHint attaches the next step to the errors of admin commands.
func adminHint(err error) error {
	var missing *db.NotFoundError
	switch {
	case err == nil:
		return nil
	case Hint(err) != "":
		return err
	case errors.Is(err, db.ErrInvalidName):
		return err // the message already says what a name may hold
	case errors.Is(err, db.ErrDuplicate):
		return withHint(err, "`librecord user list` and `librecord salon list` show the names taken (ignoring case)")
	case errors.Is(err, db.ErrPasswordInUse):
		return withHint(err, "choose another password, or leave out --password-stdin to get a generated one")
	case errors.Is(err, db.ErrInvalidPassword):
		return withHint(err, fmt.Sprintf("choose at least %d characters, or leave out --password-stdin to get a generated one", crypto.MinPasswordLength))
	case errors.As(err, &missing) && missing.Kind == db.KindSalon:
		return withHint(err, "`librecord salon list` shows the salons; `librecord salon add NAME` creates one")
	case errors.As(err, &missing) && missing.Kind == db.KindUser:
		return withHint(err, "`librecord user list` shows the users")
	case errors.Is(err, db.ErrBusy):
		return withHint(err, "nothing was changed; the database stayed locked by another process, is read-only, or the disk is full: check, then try again")
	}
	return dbHint(err)
}

// passwordFromFlags returns the password given with --password-stdin,
// checked, or "" when the flag is absent (a password is then generated).
func passwordFromFlags(c *cli.Context) (string, error) {
	if !c.Bool("password-stdin") {
		return "", nil
	}
	pw, err := readPasswordStdin(c)
	if err != nil {
		return "", err
	}
	if err := crypto.CheckPassword(pw); err != nil {
		return "", adminHint(fmt.Errorf("%w: %v", db.ErrInvalidPassword, err))
	}
	return pw, nil
}

// passwordOrGenerated returns password, or a generated one when it is
// empty, and whether it was generated (then it is shown once).
func passwordOrGenerated(password string) (string, bool, error) {
	if password != "" {
		return password, false, nil
	}
	pw := crypto.GeneratePassword()
	return pw, true, nil
}

// readPasswordStdin reads a password from the first line of stdin.
func readPasswordStdin(c *cli.Context) (string, error) {
	b, err := io.ReadAll(io.LimitReader(c.App.Reader, crypto.MaxPasswordLength+3))
	if err != nil {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	defer clear(b)
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return "", withHint(errors.New("--password-stdin: no password on stdin"), "pipe the password in, e.g. `librecord user add bob --password-stdin < pw.txt`")
	}
	return string(line), nil
}

// writeJSON writes v as indented JSON, without HTML escaping.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a writer that aligns tab-separated columns; Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}
