package commands

import "github.com/urfave/cli/v2"

// allCommands lists the subcommands, one file each.
func allCommands() []*cli.Command {
	return []*cli.Command{
		// init, user, salon, export, backup, fingerprint, passphrase: admin (foundation)
		// serve: the server
		// chat: the client
	}
}

// globalFlags are accepted before or after any subcommand.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "db", Value: "librecord.db", EnvVars: []string{"LIBRECORD_DB"}, Usage: "database `FILE`"},
		&cli.StringFlag{Name: "passphrase-file", Usage: "read the host passphrase from `FILE` (else env LIBRECORD_PASSPHRASE, else a prompt)"},
	}
}
