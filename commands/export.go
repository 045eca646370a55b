package commands

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"librecord/db"
	lnet "librecord/net"
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
			"\"system\":true on system messages. The output is decrypted: keep it safe.\n" +
			"Control characters that older messages may hold are written escaped, never raw:\n" +
			"as \\x1b (C0, DEL) or \\u009b (C1) in text, as \\u001b in JSON; newline and tab\n" +
			"stay as they are in text. A message that fails to decrypt (corrupt or tampered\n" +
			"with) is skipped: every other one is written, the unreadable ids are named on\n" +
			"stderr and the command exits 1.",
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
				var err error
				if out == "" {
					err = Export(c.Context, d, c.App.Writer, cfg)
				} else {
					err = exportToFile(c.Context, d, out, cfg)
				}
				var ue *db.UnreadableError
				if errors.As(err, &ue) {
					for _, id := range ue.IDs {
						fmt.Fprintf(c.App.ErrWriter, "librecord: unreadable message %d (skipped)\n", id)
					}
					return withHint(err, "every other message was exported; restore the messages named above from a backup if you need them")
				}
				return err
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
	var ue *db.UnreadableError
	partial := errors.As(err, &ue) // every readable message is in: keep them
	if err == nil || partial {
		if serr := f.Sync(); serr != nil {
			err = serr
		}
	}
	if cerr := f.Close(); cerr != nil && (err == nil || partial) {
		err = cerr
	}
	if err != nil && !errors.As(err, &ue) {
		os.Remove(path)
	}
	return err
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
// No control character but newline and tab (in text) is written raw. It
// returns a *db.UnreadableError, after writing every other message, when
// some failed to decrypt.
func Export(ctx context.Context, d *db.DB, w io.Writer, cfg ExportConfig) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	err := d.Export(ctx, cfg.Salon, func(m db.Message) error {
		if cfg.Format == "json" {
			line.Reset()
			if err := enc.Encode(messageJSON{m.ID, m.At.Format("2006-01-02T15:04:05.000Z07:00"), m.Salon, m.Pseudo, m.Text, m.System}); err != nil {
				return err
			}
			_, err := bw.Write(escapeJSONControls(line.Bytes()))
			return err
		}
		if m.System {
			return nil
		}
		_, err := fmt.Fprintf(bw, "PSEUDO : %s\nMESSAGE : %s ;\n", escapeControls(m.Pseudo), escapeControls(m.Text))
		return err
	})
	var ue *db.UnreadableError
	if err != nil && !errors.As(err, &ue) {
		return err
	}
	if ferr := bw.Flush(); ferr != nil {
		return ferr
	}
	return err
}

// escapeControls writes the control characters of s that a terminal
// acts on as visible escapes: C0 but newline and tab, and DEL, as \x1b;
// C1 (U+0080 to U+009F) as \u009b. Messages accepted today hold none
// (PROTOCOL.md 3.2), older rows may.
func escapeControls(s string) string {
	if !strings.ContainsFunc(s, exportControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !exportControl(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

func exportControl(r rune) bool { return lnet.IsControl(r) && r != '\n' && r != '\t' }

// escapeJSONControls escapes, in JSON that encoding/json wrote, what it
// leaves raw: DEL and the C1 controls (it escapes C0 itself). Outside
// strings JSON holds neither, so the bytes can be replaced anywhere.
func escapeJSONControls(b []byte) []byte {
	if bytes.IndexByte(b, 0x7F) < 0 && bytes.IndexByte(b, 0xC2) < 0 {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == 0x7F:
			out = append(out, `\u007f`...)
		case b[i] == 0xC2 && i+1 < len(b) && b[i+1] >= 0x80 && b[i+1] <= 0x9F:
			out = fmt.Appendf(out, `\u%04x`, b[i+1])
			i++
		default:
			out = append(out, b[i])
		}
	}
	return out
}
