package commands

import "github.com/urfave/cli/v2"

// allCommands lists the subcommands, one file each.
func allCommands() []*cli.Command {
	return []*cli.Command{
		// init, user, salon, export, backup, fingerprint, passphrase: admin (foundation)
		initCommand(),
		userCommand(),
		salonCommand(),
		exportCommand(),
		backupCommand(),
		fingerprintCommand(),
		passphraseCommand(),
		// message, prune, version: moderation, retention, operating (issue 11)
		messageCommand(),
		pruneCommand(),
		versionCommand(),
		// serve: the server
		serveCommand(),
		// chat: the client
		chatCommand(),
		// bench: load and measure a server
		benchCommand(),
	}
}

// globalFlags are accepted before or after any subcommand.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "db", Value: "librecord.db", EnvVars: []string{"LIBRECORD_DB"}, Usage: "database `FILE`"},
		// Test-only: a database created with this flag uses tiny Argon2id
		// parameters so that test suites do not crawl. Hidden from help.
		&cli.BoolFlag{Name: "insecure-test-kdf", Hidden: true},
		&cli.StringFlag{Name: "passphrase-file", Usage: "read the host passphrase from `FILE` (else env LIBRECORD_PASSPHRASE, else a prompt)"},
	}
}
