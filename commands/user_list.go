package commands

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func userListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list users, whether each is enabled, and the salons each may open",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON array"}},
		Action: func(c *cli.Context) error {
			return withDB(c, func(d *db.DB) error {
				return UserList(c.Context, d, c.App.Writer, c.Bool("json"))
			})
		},
	}
}

type userJSON struct {
	Pseudo   string   `json:"pseudo"`
	Salons   []string `json:"salons"`
	Disabled bool     `json:"disabled"`
}

// UserList writes the users as a table, or as a JSON array.
func UserList(ctx context.Context, d *db.DB, w io.Writer, asJSON bool) error {
	users, err := d.Users(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]userJSON, len(users))
		for i, u := range users {
			out[i] = userJSON{u.Pseudo, u.Salons, u.Disabled}
		}
		return writeJSON(w, out)
	}
	if len(users) == 0 {
		_, err := fmt.Fprintf(w, "no users yet: librecord user add PSEUDO --salon %s\n", db.DefaultSalon)
		return err
	}
	t := newTable(w)
	fmt.Fprintln(t, "PSEUDO\tSTATE\tSALONS")
	for _, u := range users {
		state := "enabled"
		if u.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(t, "%s\t%s\t%s\n", u.Pseudo, state, salonList(u.Salons))
	}
	return t.Flush()
}
