package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func messageCommand() *cli.Command {
	return &cli.Command{
		Name:  "message",
		Usage: "moderate messages",
		Subcommands: []*cli.Command{
			messageRemoveCommand(),
		},
	}
}

func messageRemoveCommand() *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Usage:     "delete messages of a salon for good, all or none (ids as in `librecord export --format json`)",
		ArgsUsage: "ID...",
		Description: "The rows and their encrypted text are deleted with SQLite's secure_delete (freed\n" +
			"space is overwritten with zeros) and the WAL is checkpointed and truncated, so no\n" +
			"copy stays in the database files; backups made before keep them. Fetches and\n" +
			"exports no longer return them; chat clients that already showed them keep them\n" +
			"on screen.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "salon", Usage: "the `SALON` the messages are in"},
		},
		Action: func(c *cli.Context) error {
			if err := requireFlags(c, "salon"); err != nil {
				return err
			}
			ids := make([]int64, 0, c.NArg())
			for _, a := range c.Args().Slice() {
				id, err := strconv.ParseInt(a, 10, 64)
				if err != nil || id <= 0 {
					return withHint(fmt.Errorf("message id %q: want a positive whole number", a),
						"nothing was removed; `librecord export --salon SALON --format json` shows the ids")
				}
				ids = append(ids, id)
			}
			salon := c.String("salon")
			return withDB(c, func(d *db.DB) error {
				return MessageRemove(c.Context, d, c.App.Writer, salon, ids)
			})
		},
	}
}

// MessageRemove deletes the messages ids of salon for good, all or none,
// and reports it on w.
func MessageRemove(ctx context.Context, d *db.DB, w io.Writer, salon string, ids []int64) error {
	name, err := d.RemoveMessages(ctx, salon, ids)
	switch {
	case errors.Is(err, db.ErrNotFound) && name == "" && !isSalonErr(err):
		return withHint(err, fmt.Sprintf("nothing was removed; `librecord export --salon %s --format json` shows the ids of its messages", salon))
	case err != nil && name != "":
		// Removed, but the WAL could not be truncated yet.
		return withHint(err, "the messages are gone from the database; run `librecord prune` a moment later: it truncates the WAL too")
	case err != nil:
		return err
	}
	n := len(distinct(ids))
	noun := "messages"
	if n == 1 {
		noun = "message"
	}
	_, err = fmt.Fprintf(w, "removed %d %s from %s for good; chat clients that already showed them keep them on screen\n", n, noun, name)
	return err
}

func isSalonErr(err error) bool { return strings.HasPrefix(err.Error(), "salon ") }

func distinct(ids []int64) map[int64]bool {
	m := make(map[int64]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
