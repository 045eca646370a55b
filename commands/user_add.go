package commands

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"librecord/crypto"
	"librecord/db"
	lnet "librecord/net"
)

// UserAddConfig is what `librecord user add` runs with.
type UserAddConfig struct {
	Pseudo string
	Salons []string
	// Password is the chosen password; empty means generate one and print it.
	Password string
	JSON     bool
}

func userAddCommand() *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "add a user; prints a generated password once (or takes one with --password-stdin)",
		ArgsUsage: "PSEUDO",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "salon", Usage: "give access to `SALON` (repeat the flag for several)"},
			&cli.BoolFlag{Name: "password-stdin", Usage: fmt.Sprintf("read the password from the first line of stdin (at least %d characters)", crypto.MinPasswordLength)},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		Action: func(c *cli.Context) error {
			cfg := UserAddConfig{Pseudo: c.Args().First(), Salons: c.StringSlice("salon"), JSON: c.Bool("json")}
			if !lnet.ValidName(cfg.Pseudo) {
				return fmt.Errorf("%w: pseudo %q: %s", db.ErrInvalidName, cfg.Pseudo, lnet.NameRule)
			}
			pw, err := passwordFromFlags(c)
			if err != nil {
				return err
			}
			cfg.Password = pw
			return withDB(c, func(d *db.DB) error {
				return UserAdd(c.Context, d, c.App.Writer, cfg)
			})
		},
	}
}

// UserAdd adds the user and reports it on w, with the password when it
// was generated (the only time it is ever shown).
func UserAdd(ctx context.Context, d *db.DB, w io.Writer, cfg UserAddConfig) error {
	password, generated, err := passwordOrGenerated(cfg.Password)
	if err != nil {
		return err
	}
	u, err := d.AddUser(ctx, cfg.Pseudo, password, cfg.Salons)
	if err != nil {
		return err
	}
	if cfg.JSON {
		out := passwordOutput{Pseudo: u.Pseudo, Salons: u.Salons}
		if generated {
			out.Password = password
		}
		return writeJSON(w, out)
	}
	fmt.Fprintf(w, "added user %s, salons: %s\n", u.Pseudo, salonList(u.Salons))
	if generated {
		fmt.Fprintf(w, "password: %s\n", password)
		fmt.Fprintf(w, "(shown once: give it to %s privately; it is their login and cannot be read back)\n", u.Pseudo)
	}
	return nil
}

func salonList(salons []string) string {
	if len(salons) == 0 {
		return "(none)"
	}
	return strings.Join(salons, ", ")
}
