package commands

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func userRemoveCommand() *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Usage:     "remove a user: their sessions end, their messages stay in the history, the pseudo is free again",
		ArgsUsage: "PSEUDO",
		Action: func(c *cli.Context) error {
			return withDB(c, func(d *db.DB) error {
				return UserRemove(c.Context, d, c.App.Writer, c.Args().First())
			})
		},
	}
}

// UserRemove removes the user named pseudo and reports it on w.
func UserRemove(ctx context.Context, d *db.DB, w io.Writer, pseudo string) error {
	u, err := d.User(ctx, pseudo)
	if err != nil {
		return err
	}
	if err := d.RemoveUser(ctx, u.Pseudo); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "removed user %s; their messages stay in the history, their sessions end at their next request\n", u.Pseudo)
	return err
}
