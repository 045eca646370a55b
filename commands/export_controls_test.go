package commands

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"librecord/db"
	lnet "librecord/net"
)

// hasRawControl reports a control character a terminal acts on (C0 but
// newline and tab, DEL, C1).
func hasRawControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return lnet.IsControl(r) && r != '\n' && r != '\t' })
}

// TestExportEscapesControls: texts stored before the protocol refused
// control characters are exported escaped, in text and JSON, never raw;
// the JSON still decodes to the stored text.
func TestExportEscapesControls(t *testing.T) {
	ctx := context.Background()
	e := newInitEnv(t)
	d, gen, alice := e.aliceInGeneral(false)
	stored := "red \x1b[31m csi \u009b31m del \x7f bell \a nl\nTab\t end"
	if _, err := d.InsertMessages(ctx, []db.NewMessage{
		{SalonID: gen.ID, UserID: alice.UserID, Cid: "1", Pseudo: "alice", Text: stored, Portions: 1},
	}); err != nil {
		t.Fatal(err)
	}
	text := e.mustRun("", false, "export", "--salon", "general")
	if hasRawControl(text) {
		t.Fatalf("raw control character in the text export: %q", text)
	}
	want := "PSEUDO : alice\nMESSAGE : red \\x1b[31m csi \\u009b31m del \\x7f bell \\x07 nl\nTab\t end ;\n"
	if text != want {
		t.Fatalf("text export\n%q\nwant\n%q", text, want)
	}
	js := e.mustRun("", false, "export", "--salon", "general", "--format", "json")
	if hasRawControl(js) || strings.ContainsAny(js, "\t") {
		t.Fatalf("raw control character in the JSON export: %q", js)
	}
	var m messageJSON
	if err := json.Unmarshal([]byte(js), &m); err != nil || m.Text != stored {
		t.Fatalf("JSON export %q decodes to %q (%v)", js, m.Text, err)
	}
}

// TestExportUnreadable: a row that fails to decrypt does not stop the
// export: every other message is written, the unreadable ids are named on
// stderr and the command fails (exit 1); with --out the file is kept.
func TestExportUnreadable(t *testing.T) {
	ctx := context.Background()
	e := newInitEnv(t)
	d, gen, alice := e.aliceInGeneral(false)
	var ids []int64
	for _, text := range []string{"one", "two", "three", "four"} {
		st, err := d.InsertMessages(ctx, []db.NewMessage{
			{SalonID: gen.ID, UserID: alice.UserID, Cid: text, Pseudo: "alice", Text: text, Portions: 1}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st[0].ID)
	}
	raw, err := sql.Open("sqlite", "file:"+e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// "two" and "four" are moved in time: their blobs no longer open.
	if _, err := raw.Exec(`UPDATE messages SET at = at + 1 WHERE id IN (?, ?)`, ids[1], ids[3]); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := e.run("", false, "export", "--salon", "general")
	var ue *db.UnreadableError
	if !errors.As(err, &ue) {
		t.Fatalf("export with unreadable rows: %v", err)
	}
	if out != "PSEUDO : alice\nMESSAGE : one ;\nPSEUDO : alice\nMESSAGE : three ;\n" {
		t.Fatalf("stdout %q", out)
	}
	for _, id := range []int64{ids[1], ids[3]} {
		if !strings.Contains(errOut, "unreadable message "+itoa(id)) {
			t.Fatalf("stderr does not name %d: %q", id, errOut)
		}
	}
	file := filepath.Join(e.dir, "general.jsonl")
	if _, _, err := e.run("", false, "export", "--salon", "general", "--format", "json", "--out", file); !errors.As(err, &ue) {
		t.Fatalf("export --out: %v", err)
	}
	b, err := os.ReadFile(file)
	if err != nil || strings.Count(string(b), "\n") != 2 {
		t.Fatalf("--out file: %q %v", b, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
