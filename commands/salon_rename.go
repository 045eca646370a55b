package commands

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func salonRenameCommand() *cli.Command {
	return &cli.Command{
		Name:      "rename",
		Usage:     "rename a salon; its access grants and history follow, clients still on the old name are refused it",
		ArgsUsage: "OLD NEW",
		Action: func(c *cli.Context) error {
			return withDB(c, func(d *db.DB) error {
				return SalonRename(c.Context, d, c.App.Writer, c.Args().Get(0), c.Args().Get(1))
			})
		},
	}
}

// SalonRename renames the salon old to new and reports it on w.
func SalonRename(ctx context.Context, d *db.DB, w io.Writer, old, new string) error {
	from, to, err := d.RenameSalon(ctx, old, new)
	if err != nil {
		return err
	}
	if from == to {
		_, err = fmt.Fprintf(w, "salon %s is already named so\n", from)
		return err
	}
	_, err = fmt.Fprintf(w, "renamed salon %s to %s; its members and history follow (clients still on %s are refused it and must open %s)\n", from, to, from, to)
	return err
}
