package commands

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func salonRemoveCommand() *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Usage:     "remove a salon and everyone's access to it; refuses a salon with messages unless --purge",
		ArgsUsage: "NAME",
		Description: "With --purge the salon's messages are deleted with SQLite's secure_delete (freed\n" +
			"space is overwritten with zeros) and the WAL is checkpointed and truncated, so no\n" +
			"copy stays in the database files; backups and exports made before keep them.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "purge", Usage: "also delete the salon's messages for good (export them first)"},
		},
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			return withDB(c, func(d *db.DB) error {
				err := SalonRemove(c.Context, d, c.App.Writer, name, c.Bool("purge"))
				switch {
				case errors.Is(err, db.ErrSalonNotEmpty):
					return withHint(err, fmt.Sprintf("nothing was changed; keep a copy with `librecord export --salon %s --out %s.txt`, then run `librecord salon remove %s --purge`", name, name, name))
				case errors.Is(err, db.ErrWALBusy):
					// Removed, but the WAL could not be truncated yet.
					return withHint(err, "the salon and its messages are gone from the database; run `librecord prune` a moment later: it truncates the WAL too")
				}
				return err
			})
		},
	}
}

// SalonRemove removes the salon (and with purge its messages) and reports it on w.
func SalonRemove(ctx context.Context, d *db.DB, w io.Writer, name string, purge bool) error {
	s, err := d.Salon(ctx, name)
	if err != nil {
		return err
	}
	if err := d.RemoveSalon(ctx, s.Name, purge); err != nil {
		return err
	}
	if purge && s.Last != 0 {
		_, err = fmt.Fprintf(w, "removed salon %s and its messages\n", s.Name)
	} else {
		_, err = fmt.Fprintf(w, "removed salon %s\n", s.Name)
	}
	return err
}
