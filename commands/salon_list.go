package commands

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func salonListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list salons, their message counts, retention and who may open them",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON array"}},
		Action: func(c *cli.Context) error {
			return withDB(c, func(d *db.DB) error {
				return SalonList(c.Context, d, c.App.Writer, c.Bool("json"))
			})
		},
	}
}

type salonJSON struct {
	Name     string   `json:"name"`
	Messages int64    `json:"messages"`
	Last     int64    `json:"last"`
	Members  []string `json:"members"`
	// Retention is as `salon retain` takes it: "off", "90d", "36h".
	Retention string `json:"retention"`
}

// SalonList writes the salons as a table, or as a JSON array.
func SalonList(ctx context.Context, d *db.DB, w io.Writer, asJSON bool) error {
	salons, err := d.Salons(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]salonJSON, len(salons))
		for i, s := range salons {
			out[i] = salonJSON{s.Name, s.Messages, s.Last, s.Members, db.FormatRetention(s.Retention)}
		}
		return writeJSON(w, out)
	}
	if len(salons) == 0 {
		_, err := fmt.Fprintln(w, "no salons: librecord salon add NAME")
		return err
	}
	t := newTable(w)
	fmt.Fprintln(t, "SALON\tMESSAGES\tRETAIN\tMEMBERS")
	for _, s := range salons {
		members := "(nobody)"
		if len(s.Members) > 0 {
			members = strings.Join(s.Members, ", ")
		}
		fmt.Fprintf(t, "%s\t%d\t%s\t%s\n", s.Name, s.Messages, db.FormatRetention(s.Retention), members)
	}
	return t.Flush()
}
