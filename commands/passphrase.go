package commands

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"
)

func passphraseCommand() *cli.Command {
	return &cli.Command{
		Name:  "passphrase",
		Usage: "change the host passphrase (re-wraps the data key; no message is re-encrypted)",
		Description: "The current passphrase comes as usual (--passphrase-file, LIBRECORD_PASSPHRASE\n" +
			"or a prompt); the new one from --new-passphrase-file or a prompt, asked twice.\n" +
			"A running serve keeps working. Backups made before keep the old passphrase.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "new-passphrase-file", Usage: "read the new passphrase from `FILE` (first line)"},
		},
		Action: func(c *cli.Context) error {
			d, err := openDB(c)
			if err != nil {
				return err
			}
			defer d.Close()
			var newPass []byte
			if file := c.String("new-passphrase-file"); file != "" {
				newPass, err = readSecretFile(file, "--new-passphrase-file")
			} else {
				newPass, err = promptSecret(c, "New passphrase: ", "Same new passphrase again: ",
					errors.New("no new passphrase: give --new-passphrase-file FILE, or run in a terminal to be asked"))
			}
			if err != nil {
				return err
			}
			defer clear(newPass)
			if err := checkNewPassphrase(newPass); err != nil {
				return err
			}
			if err := d.ChangePassphrase(c.Context, newPass); err != nil {
				return adminHint(err)
			}
			_, err = fmt.Fprintf(c.App.Writer, "passphrase of %s changed; update LIBRECORD_PASSPHRASE or --passphrase-file where serve is started; backups made before still open with the old one\n", d.Path())
			return err
		},
	}
}
