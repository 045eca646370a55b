package commands

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func userDisableCommand() *cli.Command {
	return &cli.Command{
		Name:      "disable",
		Usage:     "refuse a user's logins and end their sessions at their next request; their messages, salons and password stay",
		ArgsUsage: "PSEUDO",
		Action: func(c *cli.Context) error {
			return userDisabledAction(c, true)
		},
	}
}

func userEnableCommand() *cli.Command {
	return &cli.Command{
		Name:      "enable",
		Usage:     "let a disabled user log in again, with the password they had",
		ArgsUsage: "PSEUDO",
		Action: func(c *cli.Context) error {
			return userDisabledAction(c, false)
		},
	}
}

func userDisabledAction(c *cli.Context, disabled bool) error {
	return withDB(c, func(d *db.DB) error {
		return UserSetDisabled(c.Context, d, c.App.Writer, c.Args().First(), disabled)
	})
}

// UserSetDisabled disables (or enables) the user named pseudo and reports
// it on w.
func UserSetDisabled(ctx context.Context, d *db.DB, w io.Writer, pseudo string, disabled bool) error {
	u, changed, err := d.SetDisabled(ctx, pseudo, disabled)
	if err != nil {
		return err
	}
	switch {
	case !changed && disabled:
		_, err = fmt.Fprintf(w, "%s was already disabled\n", u.Pseudo)
	case !changed:
		_, err = fmt.Fprintf(w, "%s was not disabled\n", u.Pseudo)
	case disabled:
		_, err = fmt.Fprintf(w, "disabled %s: their logins are refused and their sessions end at their next request; their messages stay (librecord user enable %s undoes it)\n", u.Pseudo, u.Pseudo)
	default:
		_, err = fmt.Fprintf(w, "enabled %s: they may log in again with the password they had\n", u.Pseudo)
	}
	return err
}
