package commands

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func testApp() *cli.App {
	return &cli.App{
		Flags: globalFlags(),
		Commands: []*cli.Command{{
			Name: "user",
			Subcommands: []*cli.Command{{
				Name: "add",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "salon"},
					&cli.BoolFlag{Name: "password-stdin"},
				},
			}},
		}},
	}
}

func TestNormalizeArgs(t *testing.T) {
	want := "librecord --db x.db user add --salon general --salon dev --password-stdin bob"
	for name, in := range map[string]string{
		"FlagsFirst":   "librecord --db x.db user add --salon general --salon dev --password-stdin bob",
		"FlagsAfter":   "librecord --db x.db user add bob --salon general --salon dev --password-stdin",
		"Mixed":        "librecord --db x.db user add --salon general bob --salon dev --password-stdin",
		"GlobalAfter":  "librecord user add bob --salon general --db x.db --salon dev --password-stdin",
		"EqualsValues": "librecord user add bob --salon=general --db=x.db --salon=dev --password-stdin",
	} {
		t.Run(name, func(t *testing.T) {
			got := strings.Join(NormalizeArgs(testApp(), strings.Fields(in)), " ")
			w := want
			if name == "EqualsValues" {
				w = "librecord --db=x.db user add --salon=general --salon=dev --password-stdin bob"
			}
			if got != w {
				t.Errorf("NormalizeArgs(%q)\n got %q\nwant %q", in, got, w)
			}
		})
	}
	t.Run("DoubleDashKeepsPositional", func(t *testing.T) {
		got := NormalizeArgs(testApp(), strings.Fields("librecord user add --salon dev -- -weird"))
		want := strings.Fields("librecord user add --salon dev -- -weird")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %q want %q", got, want)
		}
	})
	t.Run("ParsesAfterReorder", func(t *testing.T) {
		var salons []string
		var stdin bool
		var args []string
		app := testApp()
		app.Commands[0].Subcommands[0].Action = func(c *cli.Context) error {
			salons, stdin, args = c.StringSlice("salon"), c.Bool("password-stdin"), c.Args().Slice()
			return nil
		}
		if err := app.Run(NormalizeArgs(app, strings.Fields("librecord user add bob --salon general --password-stdin"))); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(salons, []string{"general"}) || !stdin || !reflect.DeepEqual(args, []string{"bob"}) {
			t.Errorf("salons %q stdin %v args %q", salons, stdin, args)
		}
	})
}

// TestMissingFlagValue: a flag that takes a value, typed last without
// one, is a usage error naming that flag, for every value flag of every
// command (and the global ones under every command), typed after the
// command's arguments or with none: never another word taken as its
// value ("user list --db" is not "--db user list", unknown command
// "list"; "user add bob --salon" is not "missing PSEUDO").
func TestMissingFlagValue(t *testing.T) {
	app := NewApp()
	globals := valueFlags(app.Flags)
	var walk func(words []string, cmds []*cli.Command)
	n := 0
	walk = func(words []string, cmds []*cli.Command) {
		for _, c := range cmds {
			path := append(append([]string{}, words...), c.Name)
			for _, g := range globals {
				check(t, "", append(append([]string{}, path...), g))
			}
			if len(c.Subcommands) > 0 {
				walk(path, c.Subcommands)
				continue
			}
			min, _ := arity(c.ArgsUsage)
			args := append([]string{}, path...)
			for i := range min {
				args = append(args, fmt.Sprintf("arg%d", i+1))
			}
			for _, f := range append(valueFlags(c.Flags), globals...) {
				owner := strings.Join(path, " ")
				if slices.Contains(globals, f) {
					owner = ""
				}
				check(t, owner, append(append([]string{}, path...), f))
				check(t, owner, append(append([]string{}, args...), f))
				n++
			}
		}
	}
	walk(nil, app.Commands)
	if n < 50 {
		t.Fatalf("only %d value flags found: the walk is broken", n)
	}
}

// valueFlags are the flags that take a value, as typed: --name (and -x).
func valueFlags(flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		if _, isBool := f.(*cli.BoolFlag); isBool {
			continue
		}
		for _, name := range f.Names() {
			if len(name) == 1 {
				out = append(out, "-"+name)
			} else {
				out = append(out, "--"+name)
			}
		}
	}
	return out
}

// check runs librecord on args (refused before anything runs) and wants
// the usage error of command naming the flag typed last.
func check(t *testing.T, command string, args []string) {
	t.Helper()
	flag := args[len(args)-1]
	err := Run(context.Background(), NewApp(), append([]string{"librecord"}, args...))
	var u *UsageError
	want := fmt.Sprintf("flag %s needs a value", flag)
	if !errors.As(err, &u) || u.Command != command || u.Err.Error() != want {
		t.Errorf("librecord %s: %v, want the usage error %q of %q", strings.Join(args, " "), err, want, command)
	}
}
