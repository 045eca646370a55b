package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func fingerprintCommand() *cli.Command {
	return &cli.Command{
		Name:  "fingerprint",
		Usage: "print the server identity fingerprint (SHA256:...); needs no passphrase",
		Action: func(c *cli.Context) error {
			fp, err := db.Fingerprint(c.Context, c.String("db"))
			if err != nil {
				return dbHint(err)
			}
			_, err = fmt.Fprintln(c.App.Writer, fp)
			return err
		},
	}
}
