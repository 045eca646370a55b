package commands

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"librecord/db"
	lnet "librecord/net"
)

func salonAddCommand() *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "create a salon (names are unique ignoring case)",
		ArgsUsage: "NAME",
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			if !lnet.ValidName(name) {
				return fmt.Errorf("%w: salon name %q: %s", db.ErrInvalidName, name, lnet.NameRule)
			}
			return withDB(c, func(d *db.DB) error {
				return SalonAdd(c.Context, d, c.App.Writer, name)
			})
		},
	}
}

// SalonAdd creates the salon and reports it on w.
func SalonAdd(ctx context.Context, d *db.DB, w io.Writer, name string) error {
	s, err := d.AddSalon(ctx, name)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "added salon %s; give access with: librecord salon grant %s PSEUDO...\n", s.Name, s.Name)
	return err
}
