// Package commands turns the command line into calls: one file per
// subcommand, each Action parsing flags into a config struct and calling a
// function tests can call directly.
package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// NewApp builds the librecord command line.
func NewApp() *cli.App {
	app := &cli.App{
		Name:                 "librecord",
		Usage:                "self-hosted encrypted chat for small communities",
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		Flags:                globalFlags(),
		Version:              moduleVersion(), // --version: see version.go
	}
	app.Commands = allCommands()
	guardUsage(app)
	return app
}

// hinted is an error with a next step for the person at the terminal.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

// withHint attaches a hint that main prints after the error.
func withHint(err error, hint string) error { return &hinted{err: err, hint: hint} }

// Hint returns the next step for err, if there is an obvious one: the hint
// attached to it, or for a *UsageError the help to read.
func Hint(err error) string {
	var h *hinted
	if errors.As(err, &h) {
		return h.hint
	}
	return usageHint(err)
}

// Run runs the app on args (os.Args shape) after NormalizeArgs. A command
// line it cannot run comes back as a *UsageError.
func Run(ctx context.Context, app *cli.App, args []string) error {
	args, path, err := normalizeArgs(app, args)
	if err != nil {
		return err
	}
	err = app.RunContext(ctx, args)
	var u *UsageError
	var exit cli.ExitCoder // only urfave/cli's help returns one: "No help topic for ..."
	if !errors.As(err, &u) && errors.As(err, &exit) {
		err = &UsageError{Command: strings.Join(path, " "), Err: err}
	}
	return err
}

// NormalizeArgs lets people type flags where they like. urfave/cli v2 stops
// parsing a command's flags at its first positional argument
// (FINDINGS.md), so the leaf command's flags are moved ahead of its
// positional arguments, and global flags typed after the command (such as
// "user list --db x.db") are moved before it. "--" ends flag parsing: what
// follows stays positional. A command line whose last word is a flag that
// takes a value comes back as it was (Run refuses it: see normalizeArgs).
func NormalizeArgs(app *cli.App, args []string) []string {
	out, _, err := normalizeArgs(app, args)
	if err != nil {
		return args
	}
	return out
}

// normalizeArgs is NormalizeArgs, also returning the names of the
// commands found (["user", "add"]). A flag that takes a value and ends the
// command line is a *UsageError naming it: moved ahead of the words
// before it, it would take one of them as its value ("user list --db"
// would read as "--db user list", an unknown command "list").
func normalizeArgs(app *cli.App, args []string) ([]string, []string, error) {
	if len(args) == 0 {
		return args, nil, nil
	}
	global := newFlagTable(app.Flags)
	var head []string // global flags
	var path []string // command names
	cmds := app.Commands
	i := 1
	for ; i < len(args); i++ {
		a := args[i]
		if isFlag(a) {
			if len(path) > 0 && !global.has(a) {
				break // a flag of the command group: let cli parse or report it
			}
			head = append(head, a)
			if global.takesValue(a) {
				if i+1 == len(args) {
					return nil, path, missingValue("", a)
				}
				i++
				head = append(head, args[i])
			}
			continue
		}
		cmd := findCommand(cmds, a)
		if cmd == nil {
			break // unknown command or positional: let cli report it
		}
		path = append(path, a)
		if len(cmd.Subcommands) == 0 {
			i++
			local := newFlagTable(cmd.Flags)
			var flags, positional []string
			for ; i < len(args); i++ {
				a := args[i]
				if a == "--" {
					positional = append(positional, args[i:]...)
					break
				}
				if !isFlag(a) {
					positional = append(positional, a)
					continue
				}
				table, dst, owner := local, &flags, strings.Join(path, " ")
				if !local.has(a) && global.has(a) {
					table, dst, owner = global, &head, ""
				}
				*dst = append(*dst, a)
				if table.takesValue(a) {
					if i+1 == len(args) {
						return nil, path, missingValue(owner, a)
					}
					i++
					*dst = append(*dst, args[i])
				}
			}
			out := append([]string{args[0]}, head...)
			out = append(out, path...)
			out = append(out, flags...)
			return append(out, positional...), path, nil
		}
		cmds = cmd.Subcommands
	}
	out := append([]string{args[0]}, head...)
	out = append(out, path...)
	return append(out, args[i:]...), path, nil
}

// missingValue is the usage error of flag, typed last with no value. A
// global flag's error is librecord's own, whose help lists it.
func missingValue(command, flag string) error {
	return &UsageError{Command: command, Err: fmt.Errorf("flag %s needs a value", flag)}
}

func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// flagTable maps flag names to whether they take a separate value.
type flagTable map[string]bool

func newFlagTable(flags []cli.Flag) flagTable {
	t := flagTable{"help": false, "h": false}
	for _, f := range flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			t[n] = !isBool
		}
	}
	return t
}

func flagName(a string) string {
	name := strings.TrimLeft(a, "-")
	if j := strings.IndexByte(name, '='); j >= 0 {
		name = name[:j]
	}
	return name
}

func (t flagTable) has(a string) bool { _, ok := t[flagName(a)]; return ok }

// takesValue reports whether flag a consumes the next argument.
func (t flagTable) takesValue(a string) bool {
	return !strings.Contains(a, "=") && t[flagName(a)]
}
