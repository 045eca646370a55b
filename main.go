// Command librecord is a self-hosted chat for small communities: one binary
// that serves, chats and administers. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"librecord/commands"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := commands.Run(ctx, commands.NewApp(), os.Args)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "librecord: error: %v\n", err)
		if hint := commands.Hint(err); hint != "" {
			fmt.Fprintf(os.Stderr, "librecord: hint: %s\n", hint)
		}
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for a command line librecord cannot run (nothing was
// done), 1 for any other failure.
func exitCode(err error) int {
	var usage *commands.UsageError
	if errors.As(err, &usage) {
		return 2
	}
	return 1
}
