package commands

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func salonRetainCommand() *cli.Command {
	return &cli.Command{
		Name:      "retain",
		Usage:     "keep a salon's messages only this long (90d, 36h) or forever (off, the default)",
		ArgsUsage: "SALON DURATION|off",
		Description: "serve deletes the messages older than the retention every --prune-every\n" +
			"(5m by default); `librecord prune` does it once (stopped server, cron).",
		Action: func(c *cli.Context) error {
			retention, err := db.ParseRetention(c.Args().Get(1))
			if err != nil {
				return usageErr(c, "%w", err)
			}
			return withDB(c, func(d *db.DB) error {
				return SalonRetain(c.Context, d, c.App.Writer, c.Args().Get(0), retention)
			})
		},
	}
}

// SalonRetain sets the salon's retention and reports it on w.
func SalonRetain(ctx context.Context, d *db.DB, w io.Writer, salon string, retention time.Duration) error {
	name, err := d.SetRetention(ctx, salon, retention)
	if err != nil {
		return err
	}
	if retention == 0 {
		_, err = fmt.Fprintf(w, "%s keeps its messages forever\n", name)
		return err
	}
	_, err = fmt.Fprintf(w, "%s keeps its messages %s: serve deletes older ones within --prune-every (or run librecord prune)\n", name, db.FormatRetention(retention))
	return err
}
