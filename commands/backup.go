package commands

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "write a consistent copy of the database to FILE; safe while serve runs, needs no passphrase",
		ArgsUsage: "FILE",
		Description: "FILE must not exist. The copy holds the same encrypted data and opens with\n" +
			"the passphrase the database had when the copy was made. For cron:\n" +
			"  librecord --db /srv/librecord/librecord.db backup /backups/librecord-$(date +%F).db",
		Action: func(c *cli.Context) error {
			target := c.Args().First()
			if err := db.Backup(c.Context, c.String("db"), target); err != nil {
				if errors.Is(err, db.ErrTargetExists) {
					return withHint(err, "nothing was written; give a new file name, e.g. with the date in it")
				}
				return dbHint(err)
			}
			size := ""
			if fi, err := os.Stat(target); err == nil {
				size = fmt.Sprintf(" (%d bytes)", fi.Size())
			}
			_, err := fmt.Fprintf(c.App.Writer, "backup written to %s%s\n", target, size)
			return err
		},
	}
}
