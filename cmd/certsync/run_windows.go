//go:build windows

package main

import (
	"context"
	"io"
)

// runService runs the agent in the foreground.
func runService(ctx context.Context, o *runOptions, errOut io.Writer) error {
	return runAgent(ctx, o, errOut, agentHook{})
}
