package commands

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"librecord/db"
)

func salonGrantCommand() *cli.Command {
	return &cli.Command{
		Name:      "grant",
		Usage:     "let users open a salon",
		ArgsUsage: "SALON PSEUDO...",
		Action: func(c *cli.Context) error {
			return salonAccessAction(c, true)
		},
	}
}

func salonRevokeCommand() *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "take access to a salon away from users (at once, even on live sessions)",
		ArgsUsage: "SALON PSEUDO...",
		Action: func(c *cli.Context) error {
			return salonAccessAction(c, false)
		},
	}
}

func salonAccessAction(c *cli.Context, grant bool) error {
	args := c.Args().Slice()
	return withDB(c, func(d *db.DB) error {
		return SalonAccess(c.Context, d, c.App.Writer, args[0], args[1:], grant)
	})
}

// SalonAccess grants (or revokes) access to salon for pseudos, all or
// none, and reports on w who changed.
func SalonAccess(ctx context.Context, d *db.DB, w io.Writer, salon string, pseudos []string, grant bool) error {
	change, verb, already := d.Revoke, "access revoked from", "had no access to"
	if grant {
		change, verb, already = d.Grant, "access granted to", "already had access to"
	}
	s, err := d.Salon(ctx, salon)
	if err != nil {
		return err
	}
	changed, err := change(ctx, s.Name, pseudos)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, p := range changed {
		done[strings.ToLower(p)] = true
	}
	if len(changed) > 0 {
		fmt.Fprintf(w, "%s: %s %s\n", s.Name, verb, strings.Join(changed, ", "))
	}
	seen := map[string]bool{}
	for _, p := range pseudos {
		if k := strings.ToLower(p); !done[k] && !seen[k] {
			seen[k] = true
			fmt.Fprintf(w, "%s %s %s\n", p, already, s.Name)
		}
	}
	return nil
}
