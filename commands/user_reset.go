package commands

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"librecord/crypto"
	"librecord/db"
)

// UserResetConfig is what `librecord user reset-password` runs with.
type UserResetConfig struct {
	Pseudo string
	// Password is the chosen password; empty means generate one and print it.
	Password string
	JSON     bool
}

func userResetPasswordCommand() *cli.Command {
	return &cli.Command{
		Name:      "reset-password",
		Usage:     "give a user a new password (printed once); their live sessions end",
		ArgsUsage: "PSEUDO",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "password-stdin", Usage: fmt.Sprintf("read the new password from the first line of stdin (at least %d characters)", crypto.MinPasswordLength)},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		Action: func(c *cli.Context) error {
			cfg := UserResetConfig{Pseudo: c.Args().First(), JSON: c.Bool("json")}
			pw, err := passwordFromFlags(c)
			if err != nil {
				return err
			}
			cfg.Password = pw
			return withDB(c, func(d *db.DB) error {
				return UserResetPassword(c.Context, d, c.App.Writer, cfg)
			})
		},
	}
}

// UserResetPassword sets a new password and reports it on w, with the
// password when it was generated.
func UserResetPassword(ctx context.Context, d *db.DB, w io.Writer, cfg UserResetConfig) error {
	u, err := d.User(ctx, cfg.Pseudo)
	if err != nil {
		return err
	}
	password, generated, err := passwordOrGenerated(cfg.Password)
	if err != nil {
		return err
	}
	if err := d.ResetPassword(ctx, u.Pseudo, password); err != nil {
		return err
	}
	if cfg.JSON {
		out := passwordOutput{Pseudo: u.Pseudo}
		if generated {
			out.Password = password
		}
		return writeJSON(w, out)
	}
	fmt.Fprintf(w, "new password set for %s; their sessions end at their next request\n", u.Pseudo)
	if generated {
		fmt.Fprintf(w, "password: %s\n", password)
		fmt.Fprintf(w, "(shown once: give it to %s privately)\n", u.Pseudo)
	}
	return nil
}
