package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	t.Run("OK", func(t *testing.T) {
		c, err := d.Authenticate(ctx, "password-of-alice")
		if err != nil {
			t.Fatal(err)
		}
		if c.UserID != alice.ID || c.Pseudo != "alice" || len(c.Hash) != 32 {
			t.Fatalf("credential %+v", c)
		}
		if ok, err := d.Valid(ctx, c); !ok || err != nil {
			t.Fatalf("Valid = %v, %v", ok, err)
		}
	})
	for name, pw := range map[string]string{
		"Wrong": "password-of-alicE", "Empty": "", "Huge": string(make([]byte, 5000)),
	} {
		t.Run("ErrAuth/"+name, func(t *testing.T) {
			if _, err := d.Authenticate(ctx, pw); !errors.Is(err, ErrAuth) {
				t.Fatalf("err = %v, want ErrAuth", err)
			}
		})
	}
	t.Run("Canceled", func(t *testing.T) {
		// Every hash slot taken: a canceled login gives up instead of waiting.
		for i := 0; i < cap(d.hashSlots); i++ {
			d.hashSlots <- struct{}{}
		}
		defer func() {
			for i := 0; i < cap(d.hashSlots); i++ {
				<-d.hashSlots
			}
		}()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := d.Authenticate(cctx, "password-of-alice"); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestPasswordIDNotInClear: the stored identifier is keyed by the data key,
// so the file alone does not let anyone test password guesses.
func TestPasswordIDNotInClear(t *testing.T) {
	d := testOpen(t)
	mustUser(t, d, "alice")
	raw, err := sql.Open("sqlite", "file:"+d.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var stored []byte
	if err := raw.QueryRow(`SELECT pass_id FROM users`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	c, _ := d.Authenticate(context.Background(), "password-of-alice")
	if string(stored) != string(c.Hash) {
		t.Fatal("stored id is not the credential hash")
	}
	plain := hashPlain(d, "password-of-alice")
	if string(stored) == string(plain) {
		t.Fatal("bare Argon2id hash stored")
	}
}

func TestValidAfterChanges(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	mustUser(t, d, "alice", "general")
	mustUser(t, d, "bob", "general")
	ca, _ := d.Authenticate(ctx, "password-of-alice")
	cb, _ := d.Authenticate(ctx, "password-of-bob")

	if err := d.ResetPassword(ctx, "ALICE", "a brand new password"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.Valid(ctx, ca); ok {
		t.Fatal("old session valid after reset-password")
	}
	if _, err := d.Authenticate(ctx, "password-of-alice"); !errors.Is(err, ErrAuth) {
		t.Fatalf("old password: %v", err)
	}
	if c, err := d.Authenticate(ctx, "a brand new password"); err != nil || c.Pseudo != "alice" {
		t.Fatalf("new password: %+v %v", c, err)
	}

	if err := d.RemoveUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.Valid(ctx, cb); ok {
		t.Fatal("session valid after user remove")
	}
	// The pseudo is free again, and the new bob is not the old one.
	nb := mustUser(t, d, "Bob", "general")
	if nb.ID == cb.UserID {
		t.Fatal("user id reused")
	}
	if ok, _ := d.Valid(ctx, cb); ok {
		t.Fatal("old bob's credential valid for the new Bob")
	}
}

func TestRemovedUserMessagesStay(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	bob := mustUser(t, d, "bob", "general")
	gen, _ := d.Salon(ctx, "general")
	send(t, d, gen.ID, bob, "c1", "still here")
	if err := d.RemoveUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	msgs, _, err := d.Latest(ctx, gen.ID, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Pseudo != "bob" || msgs[0].Text != "still here" {
		t.Fatalf("history after removal: %+v %v", msgs, err)
	}
}

func TestAdminErrors(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	mustUser(t, d, "alice", "general")
	d.AddSalon(ctx, "dev")
	cases := []struct {
		name string
		do   func() error
		want error
	}{
		{"AddUser/ErrDuplicate", func() error { _, err := d.AddUser(ctx, "ALICE", "another password", nil); return err }, ErrDuplicate},
		{"AddUser/ErrPasswordInUse", func() error { _, err := d.AddUser(ctx, "carol", "password-of-alice", nil); return err }, ErrPasswordInUse},
		{"AddUser/ErrInvalidName", func() error { _, err := d.AddUser(ctx, "ca rol", "another password", nil); return err }, ErrInvalidName},
		{"AddUser/ErrInvalidName/Long", func() error {
			_, err := d.AddUser(ctx, "a23456789012345678901234567890123", "another password", nil)
			return err
		}, ErrInvalidName},
		{"AddUser/ErrInvalidPassword", func() error { _, err := d.AddUser(ctx, "carol", "short", nil); return err }, ErrInvalidPassword},
		{"AddUser/ErrNotFound", func() error {
			_, err := d.AddUser(ctx, "carol", "another password", []string{"general", "nope"})
			return err
		}, ErrNotFound},
		{"RemoveUser/ErrNotFound", func() error { return d.RemoveUser(ctx, "nobody") }, ErrNotFound},
		{"ResetPassword/ErrNotFound", func() error { return d.ResetPassword(ctx, "nobody", "another password") }, ErrNotFound},
		{"ResetPassword/ErrInvalidPassword", func() error { return d.ResetPassword(ctx, "alice", "short") }, ErrInvalidPassword},
		{"AddSalon/ErrDuplicate", func() error { _, err := d.AddSalon(ctx, "General"); return err }, ErrDuplicate},
		{"AddSalon/ErrInvalidName", func() error { _, err := d.AddSalon(ctx, "dév"); return err }, ErrInvalidName},
		{"RemoveSalon/ErrNotFound", func() error { return d.RemoveSalon(ctx, "nope", true) }, ErrNotFound},
		{"Grant/ErrNotFound/Salon", func() error { _, err := d.Grant(ctx, "nope", []string{"alice"}); return err }, ErrNotFound},
		{"Grant/ErrNotFound/User", func() error { _, err := d.Grant(ctx, "dev", []string{"alice", "nobody"}); return err }, ErrNotFound},
		{"Revoke/ErrNotFound/User", func() error { _, err := d.Revoke(ctx, "general", []string{"alice", "nobody"}); return err }, ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, d)
			if err := tc.do(); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if after := snapshot(t, d); after != before {
				t.Fatalf("database changed:\n%s\n%s", before, after)
			}
		})
	}
}

// snapshot renders users, grants and salons.
func snapshot(t *testing.T, d *DB) string {
	t.Helper()
	users, err := d.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	salons, err := d.Salons(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%+v %+v", users, salons)
}

func TestGrantRevokeAccess(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	bob := mustUser(t, d, "bob")
	dev, _ := d.AddSalon(ctx, "dev")
	if _, err := d.Access(ctx, alice.ID, "dev"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("access before grant: %v", err)
	}
	changed, err := d.Grant(ctx, "DEV", []string{"alice", "BOB"})
	if err != nil || fmt.Sprint(changed) != "[alice bob]" {
		t.Fatalf("Grant = %v, %v", changed, err)
	}
	if changed, _ := d.Grant(ctx, "dev", []string{"alice"}); len(changed) != 0 {
		t.Fatalf("second grant changed %v", changed)
	}
	if s, err := d.Access(ctx, alice.ID, "Dev"); err != nil || s.ID != dev.ID || s.Name != "dev" {
		t.Fatalf("Access = %+v, %v", s, err)
	}
	ids, _ := d.UsersWithAccess(ctx, dev.ID)
	if fmt.Sprint(ids) != fmt.Sprint([]int64{alice.ID, bob.ID}) {
		t.Fatalf("UsersWithAccess = %v", ids)
	}
	salons, _ := d.UserSalons(ctx, alice.ID)
	if len(salons) != 2 || salons[0].Name != "dev" || salons[1].Name != "general" {
		t.Fatalf("UserSalons = %+v", salons)
	}
	changed, err = d.Revoke(ctx, "dev", []string{"bob"})
	if err != nil || fmt.Sprint(changed) != "[bob]" {
		t.Fatalf("Revoke = %v, %v", changed, err)
	}
	if _, err := d.Access(ctx, bob.ID, "dev"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("access after revoke: %v", err)
	}
	for _, bad := range []string{"", "a b", "../x", "dev\n"} {
		if _, err := d.Access(ctx, alice.ID, bad); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Access(%q) = %v", bad, err)
		}
	}
	users, _ := d.Users(ctx)
	if fmt.Sprint(users) != fmt.Sprintf("[{%d alice [dev general] false} {%d bob [] false}]", alice.ID, bob.ID) {
		t.Fatalf("Users = %v", users)
	}
}

func TestRemoveSalon(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	alice := mustUser(t, d, "alice", "general")
	dev, _ := d.AddSalon(ctx, "dev")
	d.Grant(ctx, "dev", []string{"alice"})
	send(t, d, dev.ID, alice, "c", "hello dev")
	if err := d.RemoveSalon(ctx, "dev", false); !errors.Is(err, ErrSalonNotEmpty) {
		t.Fatalf("err = %v, want ErrSalonNotEmpty", err)
	}
	if _, err := d.Access(ctx, alice.ID, "dev"); err != nil {
		t.Fatal("refused removal changed access")
	}
	if err := d.RemoveSalon(ctx, "dev", true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Access(ctx, alice.ID, "dev"); !errors.Is(err, ErrNotFound) {
		t.Fatal("access to a removed salon")
	}
	// A new salon of the same name starts empty.
	dev2, _ := d.AddSalon(ctx, "dev")
	if msgs, _, _ := d.Latest(ctx, dev2.ID, 10); len(msgs) != 0 || dev2.ID == dev.ID {
		t.Fatalf("new dev: id %d, %d messages", dev2.ID, len(msgs))
	}
}

func TestConcurrentAuthenticate(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	for i := 0; i < 5; i++ {
		mustUser(t, d, fmt.Sprint("user", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := d.Authenticate(ctx, fmt.Sprint("password-of-user", i%5))
			if err == nil && c.Pseudo != fmt.Sprint("user", i%5) {
				err = fmt.Errorf("got %s", c.Pseudo)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestChangePassword(t *testing.T) {
	ctx := context.Background()
	d := testOpen(t)
	mustUser(t, d, "alice", "general")
	mustUser(t, d, "bob", "general")
	c, err := d.Authenticate(ctx, "password-of-alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("ErrAuth/Wrong", func(t *testing.T) {
		for _, pw := range []string{"password-of-bob", "", "password-of-alicE"} {
			if _, err := d.ChangePassword(ctx, c, pw, "a new password for alice"); !errors.Is(err, ErrAuth) {
				t.Fatalf("current %q: err = %v, want ErrAuth", pw, err)
			}
		}
	})
	t.Run("ErrPasswordInUse", func(t *testing.T) {
		if _, err := d.ChangePassword(ctx, c, "password-of-alice", "password-of-bob"); !errors.Is(err, ErrPasswordInUse) {
			t.Fatalf("err = %v, want ErrPasswordInUse", err)
		}
	})
	t.Run("OK", func(t *testing.T) {
		next, err := d.ChangePassword(ctx, c, "password-of-alice", "a new password for alice")
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := d.Valid(ctx, next); !ok {
			t.Fatal("the new credential is not valid")
		}
		if ok, _ := d.Valid(ctx, c); ok {
			t.Fatal("the old credential is still valid")
		}
		if got, err := d.Authenticate(ctx, "a new password for alice"); err != nil || got.UserID != c.UserID {
			t.Fatalf("login with the new password: %+v, %v", got, err)
		}
		if _, err := d.Authenticate(ctx, "password-of-alice"); !errors.Is(err, ErrAuth) {
			t.Fatalf("login with the old password: %v", err)
		}
	})
	t.Run("ErrAuth/Stale", func(t *testing.T) {
		// c no longer names alice's password: the right old password of
		// a stale credential changes nothing.
		if _, err := d.ChangePassword(ctx, c, "password-of-alice", "yet another password"); !errors.Is(err, ErrAuth) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
	})
}
