package commands

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func passphraseCommand() *cli.Command {
	return &cli.Command{
		Name:  "passphrase",
		Usage: "change the host passphrase (re-wraps the data key), or with --rotate-key replace the data key too",
		Description: "The current passphrase comes as usual (--passphrase-file, LIBRECORD_PASSPHRASE\n" +
			"or a prompt); the new one from --new-passphrase-file or a prompt, asked twice.\n" +
			"\n" +
			"Without --rotate-key: a moment's work, and a running serve keeps working. The old\n" +
			"passphrase no longer opens the current file; but the data key stays the same, so\n" +
			"someone holding an older copy of the file and the old passphrase can still read\n" +
			"messages written later, if they get the later file.\n" +
			"\n" +
			"With --rotate-key: a new random data key; every message and the identity key are\n" +
			"re-encrypted under it, in batches. serve must be stopped (it is refused while any\n" +
			"other librecord process has the database open, and serve cannot start while it\n" +
			"runs). If it is interrupted, the database still opens with the old passphrase;\n" +
			"run the same command again to finish. Users keep their passwords.\n" +
			"\n" +
			"Either way, the old wrapped key is gone from the file and its WAL once the\n" +
			"command succeeds. Backups made before still open with the old passphrase.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "new-passphrase-file", Usage: "read the new passphrase from `FILE` (first line)"},
			&cli.BoolFlag{Name: "rotate-key", Usage: "also replace the data key and re-encrypt every message (serve stopped)"},
			&cli.IntFlag{Name: "batch", Value: db.DefaultRotateBatch, Usage: "with --rotate-key: messages re-encrypted per transaction"},
			// Test-only: stop for good after N batches, so that a test can
			// kill the process in the middle of a rotation.
			&cli.IntFlag{Name: "test-pause-after", Hidden: true},
		},
		Action: func(c *cli.Context) error {
			if c.Int("batch") < 1 {
				return usageErr(c, "--batch %d: must be at least 1", c.Int("batch"))
			}
			d, err := openDB(c)
			if err != nil {
				return err
			}
			defer d.Close()
			if d.RotationUnfinished() && !c.Bool("rotate-key") {
				return adminHint(db.ErrRotationUnfinished)
			}
			if c.Bool("rotate-key") {
				if err := d.CheckAlone(); err != nil {
					return adminHint(err)
				}
			}
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
			if c.Bool("rotate-key") {
				return rotateKey(c, d, newPass)
			}
			if err := d.ChangePassphrase(c.Context, newPass); err != nil {
				if errors.Is(err, db.ErrNotScrubbed) {
					return withHint(err, "the NEW passphrase is in force; the old wrapped key may remain in the WAL until serve's next checkpoint: run this again when the server is less busy, or stop serve (a clean stop removes the WAL)")
				}
				return adminHint(err)
			}
			_, err = fmt.Fprintf(c.App.Writer, "passphrase of %s changed; update LIBRECORD_PASSPHRASE or --passphrase-file where serve is started; backups made before still open with the old one\n", d.Path())
			return err
		},
	}
}

func rotateKey(c *cli.Context, d *db.DB, newPass []byte) error {
	opts := db.RotateOptions{BatchSize: c.Int("batch")}
	if d.RotationUnfinished() {
		fmt.Fprintf(c.App.ErrWriter, "librecord: resuming the interrupted key rotation of %s\n", d.Path())
	}
	last := -1
	opts.Progress = func(done, total int64) {
		// One line per tenth, and the last: enough to see it move.
		if pct := int(done * 10 / max(total, 1)); pct != last || done == total {
			last = pct
			fmt.Fprintf(c.App.ErrWriter, "librecord: re-encrypted %d of %d messages\n", done, total)
		}
	}
	if n := c.Int("test-pause-after"); n > 0 {
		opts.AfterBatch = func(batches int) error {
			if batches < n {
				return nil
			}
			fmt.Fprintf(c.App.ErrWriter, "librecord: paused after %d batches\n", batches)
			<-c.Context.Done()
			return c.Context.Err()
		}
	}
	res, err := d.RotateKey(c.Context, newPass, opts)
	if err != nil {
		if errors.Is(err, db.ErrInUse) {
			return adminHint(err)
		}
		if errors.Is(err, db.ErrNotScrubbed) {
			return withHint(err, "the data key was replaced and the NEW passphrase is in force; old ciphertexts may remain in the file's free space: free some disk space (the rebuild needs about the size of the database) and run `librecord passphrase --rotate-key` again")
		}
		return withHint(err, "the database still opens with the current passphrase and reads as before; run this command again to finish the rotation")
	}
	if len(res.Unreadable) > 0 {
		ids := make([]string, len(res.Unreadable))
		for i, id := range res.Unreadable {
			ids[i] = strconv.FormatInt(id, 10)
		}
		fmt.Fprintf(c.App.ErrWriter, "librecord: warning: %d messages could not be decrypted and were left as they were (unreadable for good): ids %s\n",
			len(ids), strings.Join(ids, ", "))
	}
	_, err = fmt.Fprintf(c.App.Writer, "data key of %s replaced and %d messages re-encrypted; the passphrase changed too: update LIBRECORD_PASSPHRASE or --passphrase-file where serve is started; backups made before still open with the old one, and only read what they hold\n",
		d.Path(), res.Reencrypted)
	return err
}
