package commands

import "github.com/urfave/cli/v2"

func salonCommand() *cli.Command {
	return &cli.Command{
		Name:  "salon",
		Usage: "add, remove, list, rename salons; grant and revoke access; set retention",
		Subcommands: []*cli.Command{
			salonAddCommand(),
			salonRemoveCommand(),
			salonGrantCommand(),
			salonRevokeCommand(),
			salonListCommand(),
			salonRenameCommand(),
			salonRetainCommand(),
		},
	}
}
