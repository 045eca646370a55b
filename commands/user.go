package commands

import "github.com/urfave/cli/v2"

func userCommand() *cli.Command {
	return &cli.Command{
		Name:  "user",
		Usage: "add, remove, list, disable, enable users; reset a password",
		Subcommands: []*cli.Command{
			userAddCommand(),
			userRemoveCommand(),
			userListCommand(),
			userResetPasswordCommand(),
			userDisableCommand(),
			userEnableCommand(),
		},
	}
}

// passwordOutput is what user add and reset-password print with --json.
type passwordOutput struct {
	Pseudo   string   `json:"pseudo"`
	Salons   []string `json:"salons,omitempty"`
	Password string   `json:"password,omitempty"`
}
