package commands

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"librecord/db"
)

var passwordLine = regexp.MustCompile(`(?m)^password: (\S+)$`)

func printedPassword(t *testing.T, out string) string {
	t.Helper()
	m := passwordLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no password in %q", out)
	}
	return m[1]
}

func login(t *testing.T, e *adminEnv, password string) (db.Credential, error) {
	t.Helper()
	return e.open().Authenticate(context.Background(), password)
}

func TestUserAdd(t *testing.T) {
	orders(t, func(t *testing.T, after bool) {
		e := newInitEnv(t)
		e.mustRun("", after, "salon", "add", "dev")
		args := []string{"user", "add", "alice", "--salon", "general", "--salon", "dev"}
		if after {
			args = []string{"user", "add", "--salon", "general", "--salon", "dev", "alice"}
		}
		out := e.mustRun("", after, args...)
		pw := printedPassword(t, out)
		if c, err := login(t, e, pw); err != nil || c.Pseudo != "alice" {
			t.Fatalf("login with printed password: %+v %v", c, err)
		}
		if !strings.Contains(out, "salons: dev, general") {
			t.Fatalf("output %q", out)
		}
		args = []string{"user", "add", "bob", "--salon", "general", "--password-stdin"}
		if after {
			args = []string{"user", "add", "--password-stdin", "--salon=general", "bob"}
		}
		out = e.mustRun("bob's own password\n", after, args...)
		if strings.Contains(out, "password:") {
			t.Fatalf("chosen password printed: %q", out)
		}
		if c, err := login(t, e, "bob's own password"); err != nil || c.Pseudo != "bob" {
			t.Fatalf("login with chosen password: %+v %v", c, err)
		}
		var js passwordOutput
		out = e.mustRun("", after, "user", "add", "carol", "--json")
		if err := json.Unmarshal([]byte(out), &js); err != nil || js.Pseudo != "carol" || js.Password == "" {
			t.Fatalf("--json: %q %v", out, err)
		}
	})
}

func TestUserAddErrors(t *testing.T) {
	e := newInitEnv(t)
	e.mustRun("alice's password\n", false, "user", "add", "alice", "--password-stdin")
	cases := []struct {
		name  string
		stdin string
		args  []string
		want  error
	}{
		{"ErrDuplicate", "", []string{"user", "add", "ALICE"}, db.ErrDuplicate},
		{"ErrNotFound", "", []string{"user", "add", "bob", "--salon", "general", "--salon", "nope"}, db.ErrNotFound},
		{"ErrInvalidName", "", []string{"user", "add", "bob smith"}, db.ErrInvalidName},
		{"ErrInvalidName/Empty", "", []string{"user", "add", ""}, db.ErrInvalidName},
		{"ErrInvalidPassword", "short\n", []string{"user", "add", "bob", "--password-stdin"}, db.ErrInvalidPassword},
		{"ErrPasswordInUse", "alice's password\n", []string{"user", "add", "bob", "--password-stdin"}, db.ErrPasswordInUse},
		{"NoStdin", "", []string{"user", "add", "bob", "--password-stdin"}, nil},
		{"NoPseudo", "", []string{"user", "add"}, nil},
		{"TwoPseudos", "", []string{"user", "add", "bob", "carol"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.mustRun("", false, "user", "list", "--json")
			_, _, err := e.run(tc.stdin, true, tc.args...)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want != nil && tc.want != db.ErrInvalidName && Hint(err) == "" {
				t.Errorf("no hint for %v", err)
			}
			if after := e.mustRun("", false, "user", "list", "--json"); after != before {
				t.Fatalf("users changed: %s -> %s", before, after)
			}
		})
	}
}

func TestUserListRemoveReset(t *testing.T) {
	orders(t, func(t *testing.T, after bool) {
		e := newInitEnv(t)
		e.mustRun("", after, "salon", "add", "dev")
		e.mustRun("alice's password\n", after, "user", "add", "alice", "--salon", "general", "--salon", "dev", "--password-stdin")
		e.mustRun("bob's password!\n", after, "user", "add", "bob", "--salon", "general", "--password-stdin")

		table := e.mustRun("", after, "user", "list")
		want := "PSEUDO  STATE    SALONS\nalice   enabled  dev, general\nbob     enabled  general\n"
		if table != want {
			t.Fatalf("user list:\n%s\nwant:\n%s", table, want)
		}
		var users []userJSON
		if err := json.Unmarshal([]byte(e.mustRun("", after, "user", "list", "--json")), &users); err != nil {
			t.Fatal(err)
		}
		if len(users) != 2 || users[0].Pseudo != "alice" || strings.Join(users[0].Salons, ",") != "dev,general" {
			t.Fatalf("user list --json: %+v", users)
		}

		cred, err := login(t, e, "bob's password!")
		if err != nil {
			t.Fatal(err)
		}
		e.mustRun("", after, "user", "remove", "bob")
		d := e.open()
		if ok, _ := d.Valid(context.Background(), cred); ok {
			t.Fatal("bob's session still valid")
		}
		if _, _, err := e.run("", after, "user", "remove", "bob"); !errors.Is(err, db.ErrNotFound) || Hint(err) == "" {
			t.Fatalf("second remove: %v", err)
		}

		alice, _ := login(t, e, "alice's password")
		args := []string{"user", "reset-password", "alice"}
		if after {
			args = []string{"user", "reset-password", "alice", "--json"}
		}
		out := e.mustRun("", after, args...)
		var pw string
		if after {
			var js passwordOutput
			if err := json.Unmarshal([]byte(out), &js); err != nil {
				t.Fatal(err)
			}
			pw = js.Password
		} else {
			pw = printedPassword(t, out)
		}
		if ok, _ := d.Valid(context.Background(), alice); ok {
			t.Fatal("alice's old session still valid")
		}
		if c, err := login(t, e, pw); err != nil || c.Pseudo != "alice" {
			t.Fatalf("new password: %v", err)
		}
		e.mustRun("a chosen new password\n", after, "user", "reset-password", "--password-stdin", "alice")
		if _, err := login(t, e, "a chosen new password"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.run("", after, "user", "reset-password", "nobody"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("reset unknown: %v", err)
		}
	})
}
