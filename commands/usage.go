package commands

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// UsageError is a command line librecord cannot run: an unknown command or
// flag, a flag value that does not parse, a missing or extra argument.
// Nothing was done; main exits with status 2 on it.
type UsageError struct {
	// Command is the full command, such as "user add"; "" for librecord
	// itself.
	Command string
	Err     error
}

// Error names the command and what is wrong with the command line.
func (e *UsageError) Error() string {
	if e.Command == "" {
		return e.Err.Error()
	}
	return e.Command + ": " + e.Err.Error()
}

// Unwrap returns what urfave/cli or the argument check reported.
func (e *UsageError) Unwrap() error { return e.Err }

// Hint names the help of the command that was typed.
func (e *UsageError) Hint() string {
	return fmt.Sprintf("see `%s --help`", strings.TrimSpace("librecord "+e.Command))
}

// commandPath is the full name of c's command ("user add"), "" for the app
// itself. (urfave/cli's Command.FullName is the short name for commands
// run through their parent.)
func commandPath(c *cli.Context) string {
	var names []string
	for _, x := range c.Lineage() {
		if x.Command != nil && !isRoot(x) {
			names = append([]string{x.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}

// isRoot reports whether x is the context of the app itself (whose parent
// carries no command).
func isRoot(x *cli.Context) bool {
	lin := x.Lineage()
	return len(lin) < 2 || lin[1].Command == nil
}

// usageErr is a UsageError for c's command.
func usageErr(c *cli.Context, format string, a ...any) error {
	return &UsageError{Command: commandPath(c), Err: fmt.Errorf(format, a...)}
}

// guardUsage makes every command line the app cannot run come back as a
// *UsageError, never as urfave/cli's own help text, exit code or os.Exit:
// flag errors of every command, unknown commands, and argument counts
// checked against each command's ArgsUsage (see arity) before its Action
// runs, so a command cannot forget to check them.
func guardUsage(app *cli.App) {
	app.ExitErrHandler = func(*cli.Context, error) {} // main exits, nobody else
	app.OnUsageError = onUsageError
	app.Action = groupAction
	guardCommands(app.Commands)
}

func guardCommands(cmds []*cli.Command) {
	for _, cmd := range cmds {
		cmd.OnUsageError = onUsageError
		if len(cmd.Subcommands) > 0 {
			if cmd.Action == nil {
				cmd.Action = groupAction
			}
			guardCommands(cmd.Subcommands)
			continue
		}
		if cmd.Action != nil {
			cmd.Action = checkArgs(cmd.ArgsUsage, cmd.Action)
		}
	}
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	return usageErr(c, "%w", err)
}

// groupAction runs for the app, or a command with subcommands, when no
// subcommand of it was named: help for nothing, a usage error for a word
// that is not one of its commands.
func groupAction(c *cli.Context) error {
	if c.Args().Present() {
		return usageErr(c, "unknown command %q", c.Args().First())
	}
	if isRoot(c) {
		return cli.ShowAppHelp(c)
	}
	return cli.ShowSubcommandHelp(c)
}

// checkArgs runs action once the count of positional arguments fits
// argsUsage.
func checkArgs(argsUsage string, action cli.ActionFunc) cli.ActionFunc {
	min, max := arity(argsUsage)
	return func(c *cli.Context) error {
		n := c.NArg()
		switch {
		case n < min:
			words := strings.Fields(argsUsage)
			return usageErr(c, "missing %s (usage: librecord %s %s)",
				strings.Trim(words[n], "[]."), commandPath(c), argsUsage)
		case max == 0 && n > 0:
			return usageErr(c, "unexpected argument %q (it takes none)", c.Args().First())
		case max >= 0 && n > max:
			return usageErr(c, "unexpected argument %q (usage: librecord %s %s)",
				c.Args().Get(max), commandPath(c), argsUsage)
		}
		return action(c)
	}
}

// arity reads the count of positional arguments a command takes from its
// ArgsUsage, the one place help shows them (so it names positional
// arguments only, never flags): each word is one argument,
// "[WORD]" an optional one, and a word ending in "..." (inside brackets or
// not) any number more. max is -1 when there is no upper bound.
func arity(argsUsage string) (min, max int) {
	for _, w := range strings.Fields(argsUsage) {
		optional := strings.HasPrefix(w, "[")
		if !optional {
			min++
		}
		if strings.HasSuffix(strings.TrimSuffix(w, "]"), "...") {
			return min, -1
		}
		max++
	}
	return min, max
}

// requireFlags returns a *UsageError naming the first of the flags names
// that was not given. (urfave/cli's Required prints the whole help on
// stdout and returns an error of an unexported type: librecord does not
// use it.)
func requireFlags(c *cli.Context, names ...string) error {
	for _, n := range names {
		if !c.IsSet(n) {
			return usageErr(c, "missing --%s", n)
		}
	}
	return nil
}

// usageHint is the hint of a *UsageError in err's chain, if any.
func usageHint(err error) string {
	var u *UsageError
	if errors.As(err, &u) {
		return u.Hint()
	}
	return ""
}
