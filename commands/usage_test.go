package commands

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func TestArity(t *testing.T) {
	for _, tc := range []struct {
		usage    string
		min, max int
	}{
		{"", 0, 0},
		{"FILE", 1, 1},
		{"SALON PSEUDO...", 2, -1},
		{"NAME [NEW]", 1, 2},
		{"[PSEUDO...]", 0, -1},
	} {
		if min, max := arity(tc.usage); min != tc.min || max != tc.max {
			t.Errorf("arity(%q) = %d, %d; want %d, %d", tc.usage, min, max, tc.min, tc.max)
		}
	}
}

// TestNoRequiredFlags: urfave/cli's Required prints the whole help on
// stdout and returns an error of an unexported type, which main cannot
// tell from a failure; commands call requireFlags instead.
func TestNoRequiredFlags(t *testing.T) {
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				if r, ok := f.(cli.RequiredFlag); ok && r.IsRequired() {
					t.Errorf("%s %s: --%s is Required: check it with requireFlags", path, c.Name, f.Names()[0])
				}
			}
			walk(path+" "+c.Name, c.Subcommands)
		}
	}
	walk("librecord", NewApp().Commands)
}

// TestNotFoundHints: the hint after an unknown name is chosen from the
// kind of thing that was not found (db.NotFoundError), never from the text.
func TestNotFoundHints(t *testing.T) {
	e := newInitEnv(t)
	e.mustRun("alice's password\n", false, "user", "add", "alice", "--password-stdin")
	for name, tc := range map[string]struct {
		args []string
		hint string
	}{
		"UserAddUnknownSalon": {[]string{"user", "add", "bob", "--salon", "nope"}, "`librecord salon list` shows the salons"},
		"UserRemoveUnknown":   {[]string{"user", "remove", "nope"}, "`librecord user list` shows the users"},
		"GrantUnknownSalon":   {[]string{"salon", "grant", "nope", "alice"}, "`librecord salon list` shows the salons"},
		"GrantUnknownUser":    {[]string{"salon", "grant", "general", "nope"}, "`librecord user list` shows the users"},
		"RemoveUnknownSalon":  {[]string{"salon", "remove", "nope"}, "`librecord salon list` shows the salons"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := e.run("", false, tc.args...)
			if err == nil || !strings.Contains(err.Error(), `"nope": not found`) {
				t.Fatalf("err = %v, want nope not found", err)
			}
			if !strings.HasPrefix(Hint(err), tc.hint) {
				t.Errorf("hint %q, want %q", Hint(err), tc.hint)
			}
		})
	}
}

func TestWaitInterruptible(t *testing.T) {
	errChat := errors.New("chat ended")
	t.Run("Ended", func(t *testing.T) {
		done := make(chan error, 1)
		done <- errChat
		if err := waitInterruptible(context.Background(), done, time.Hour); err != errChat {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("EndedAfterSignal", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error)
		go func() { done <- errChat }()
		if err := waitInterruptible(ctx, done, time.Hour); err != errChat {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("Abandoned", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := waitInterruptible(ctx, make(chan error), time.Millisecond); err != errInterrupted {
			t.Fatalf("got %v, want errInterrupted", err)
		}
	})
}
