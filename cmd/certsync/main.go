// Command certsync publishes users' certificates from an on-premises
// directory to Microsoft Entra ID. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process the default way.
	go func() { <-ctx.Done(); stop() }()
	root, finishProfiles := newRootCommand()
	err := root.ExecuteContext(ctx)
	stop()
	if perr := finishProfiles(); perr != nil {
		fmt.Fprintln(os.Stderr, "certsync:", perr)
	}
	var ec exitCode
	switch {
	case errors.As(err, &ec):
		os.Exit(int(ec))
	case err != nil:
		fmt.Fprintln(os.Stderr, "certsync:", err)
		os.Exit(1)
	}
}

// exitCode ends the command with a status and no further message (the
// command has already said what happened).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
