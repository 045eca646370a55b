package commands

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"librecord/db"
)

func TestSalonCommands(t *testing.T) {
	orders(t, func(t *testing.T, after bool) {
		ctx := context.Background()
		e := newInitEnv(t)
		e.mustRun("alice's password\n", after, "user", "add", "alice", "--password-stdin")
		e.mustRun("bob's password!\n", after, "user", "add", "bob", "--password-stdin")
		e.mustRun("", after, "salon", "add", "dev")

		out := e.mustRun("", after, "salon", "grant", "dev", "alice", "bob")
		if out != "dev: access granted to alice, bob\n" {
			t.Fatalf("grant said %q", out)
		}
		out = e.mustRun("", after, "salon", "grant", "DEV", "Alice")
		if out != "Alice already had access to dev\n" {
			t.Fatalf("second grant said %q", out)
		}
		e.mustRun("", after, "salon", "revoke", "dev", "bob")
		d := e.open()
		alice, _ := d.Authenticate(ctx, "alice's password")
		bob, _ := d.Authenticate(ctx, "bob's password!")
		if _, err := d.Access(ctx, alice.UserID, "dev"); err != nil {
			t.Fatal("alice lost access")
		}
		if _, err := d.Access(ctx, bob.UserID, "dev"); !errors.Is(err, db.ErrNotFound) {
			t.Fatal("bob kept access")
		}

		table := e.mustRun("", after, "salon", "list")
		want := "SALON    MESSAGES  RETAIN  MEMBERS\ndev      0         off     alice\ngeneral  0         off     (nobody)\n"
		if table != want {
			t.Fatalf("salon list:\n%s\nwant:\n%s", table, want)
		}
		var salons []salonJSON
		if err := json.Unmarshal([]byte(e.mustRun("", after, "salon", "list", "--json")), &salons); err != nil {
			t.Fatal(err)
		}
		if len(salons) != 2 || salons[0].Name != "dev" || len(salons[0].Members) != 1 || salons[1].Members == nil {
			t.Fatalf("salon list --json: %+v", salons)
		}

		// A salon with messages is kept unless --purge.
		dev, _ := d.Salon(ctx, "dev")
		if _, err := d.InsertMessages(ctx, []db.NewMessage{{SalonID: dev.ID, UserID: alice.UserID, Cid: "1", Pseudo: "alice", Text: "hi", Portions: 1}}); err != nil {
			t.Fatal(err)
		}
		_, _, err := e.run("", after, "salon", "remove", "dev")
		if !errors.Is(err, db.ErrSalonNotEmpty) || Hint(err) == "" {
			t.Fatalf("remove non-empty: %v (hint %q)", err, Hint(err))
		}
		args := []string{"salon", "remove", "dev", "--purge"}
		if after {
			args = []string{"salon", "remove", "--purge", "dev"}
		}
		e.mustRun("", after, args...)
		if _, err := d.Salon(ctx, "dev"); !errors.Is(err, db.ErrNotFound) {
			t.Fatal("dev still there")
		}
		e.mustRun("", after, "salon", "add", "empty")
		e.mustRun("", after, "salon", "remove", "empty")
	})
}

func TestSalonErrors(t *testing.T) {
	e := newInitEnv(t)
	e.mustRun("alice's password\n", false, "user", "add", "alice", "--password-stdin")
	cases := []struct {
		name string
		args []string
		want error
	}{
		{"Add/ErrDuplicate", []string{"salon", "add", "General"}, db.ErrDuplicate},
		{"Add/ErrInvalidName", []string{"salon", "add", "d/v"}, db.ErrInvalidName},
		{"Remove/ErrNotFound", []string{"salon", "remove", "nope"}, db.ErrNotFound},
		{"Grant/ErrNotFound/Salon", []string{"salon", "grant", "nope", "alice"}, db.ErrNotFound},
		{"Grant/ErrNotFound/User", []string{"salon", "grant", "general", "alice", "nobody"}, db.ErrNotFound},
		{"Revoke/ErrNotFound/User", []string{"salon", "revoke", "general", "nobody"}, db.ErrNotFound},
		{"Grant/NoUsers", []string{"salon", "grant", "general"}, nil},
		{"Add/NoName", []string{"salon", "add"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.mustRun("", false, "salon", "list", "--json")
			_, _, err := e.run("", true, tc.args...)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if after := e.mustRun("", false, "salon", "list", "--json"); after != before {
				t.Fatalf("salons changed: %s -> %s", before, after)
			}
		})
	}
}
