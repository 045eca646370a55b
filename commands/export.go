package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

// ExportConfig is what `librecord export` runs with.
type ExportConfig struct {
	Salon  string
	Format string // "text" (the manual's layout) or "json" (JSON lines)
}

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write a salon's messages, decrypted, oldest first",
		Description: "--format text (default) is the manual's salon file layout, one message as\n" +
			"  PSEUDO : alice\n  MESSAGE : bonjour ;\n" +
			"without system messages (\"alice disconnected\"). --format json writes one JSON\n" +
			"object a line: {\"id\":..,\"at\":\"..Z\",\"salon\":..,\"pseudo\":..,\"text\":..} with\n" +
			"\"system\":true on system messages. The output is decrypted: keep it safe.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "salon", Usage: "the `SALON` to export (required)"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "`text` or json"},
			&cli.StringFlag{Name: "out", Usage: "write to `FILE` (must not exist) instead of stdout"},
		},
		Action: func(c *cli.Context) error {
			if err := requireFlags(c, "salon"); err != nil {
				return err
			}
			cfg := ExportConfig{Salon: c.String("salon"), Format: c.String("format")}
			if cfg.Format != "text" && cfg.Format != "json" {
				return withHint(fmt.Errorf("unknown export format %q", cfg.Format), "use --format text or --format json")
			}
			out := c.String("out")
			if out != "" {
				if _, err := os.Lstat(out); err == nil {
					return withHint(fmt.Errorf("--out %s: %w", out, db.ErrTargetExists), "nothing was written; choose a new file name")
				}
			}
			return withDB(c, func(d *db.DB) error {
				if out == "" {
					return Export(c.Context, d, c.App.Writer, cfg)
				}
				return exportToFile(c.Context, d, out, cfg)
			})
		},
	}
}

// exportToFile writes to a new file (0600: it is decrypted), removing it
// if the export fails half way.
func exportToFile(ctx context.Context, d *db.DB, path string, cfg ExportConfig) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return withHint(fmt.Errorf("--out %s: %w", path, db.ErrTargetExists), "nothing was written; choose a new file name")
	}
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	err = Export(ctx, d, f, cfg)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

type messageJSON struct {
	ID     int64  `json:"id"`
	At     string `json:"at"`
	Salon  string `json:"salon"`
	Pseudo string `json:"pseudo"`
	Text   string `json:"text"`
	System bool   `json:"system,omitempty"`
}

// Export streams a salon to w: memory stays flat however long the history.
func Export(ctx context.Context, d *db.DB, w io.Writer, cfg ExportConfig) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := d.Export(ctx, cfg.Salon, func(m db.Message) error {
		if cfg.Format == "json" {
			return enc.Encode(messageJSON{m.ID, m.At.Format("2006-01-02T15:04:05.000Z07:00"), m.Salon, m.Pseudo, m.Text, m.System})
		}
		if m.System {
			return nil
		}
		_, err := fmt.Fprintf(bw, "PSEUDO : %s\nMESSAGE : %s ;\n", m.Pseudo, m.Text)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}
