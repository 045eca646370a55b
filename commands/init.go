package commands

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create the database (--db) with its keys, its identity and the salon general",
		Description: "Asks for the host passphrase twice at a terminal (or takes --passphrase-file or\n" +
			"LIBRECORD_PASSPHRASE). Never touches an existing file.",
		Action: func(c *cli.Context) error {
			pass, err := createDB(c)
			if err != nil {
				return err
			}
			clear(pass)
			return initReport(c, c.App.Writer, c.String("db"))
		},
	}
}

func initReport(c *cli.Context, w io.Writer, path string) error {
	fp, err := db.Fingerprint(c.Context, path)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "created %s with salon %q\n", path, db.DefaultSalon)
	fmt.Fprintf(w, "server fingerprint: %s\n", fp)
	fmt.Fprintf(w, "next: librecord user add PSEUDO --salon %s\n", db.DefaultSalon)
	return nil
}
