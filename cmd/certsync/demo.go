//go:build !release

package main

import (
	"context"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/agent/config"
	"github.com/certsync/certsync/agent/demo"
	"github.com/certsync/certsync/agent/report"
)

// demoCommands are the commands only a development build has: the demo
// links the test harnesses, which the release build leaves out.
func demoCommands() []*cobra.Command { return []*cobra.Command{newDemoCommand()} }

func newDemoCommand() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on an embedded directory, Graph and Exchange Online emulator",
		Long: `Starts an in-process LDAP directory seeded with a generated PKI and users
covering the interesting cases, and an in-process emulator of both cloud
targets: Microsoft Graph (certificate sign-in bindings in certificateUserIds)
and Exchange Online (the S/MIME certificates on each mailbox). It then prints
the dry-run plan, applies it, checks what every mailbox holds, and runs a
second pass that changes nothing. Nothing outside a temporary directory is
touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo.Run(cmd.Context(), demo.Options{
				Out:   cmd.OutOrStdout(),
				Keep:  keep,
				Build: buildDemoPass,
				Print: report.WriteTable,
			})
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (config, PKI, state) and print its path")
	return cmd
}

// buildDemoPass wires the pipeline from the configuration file the demo
// wrote, as sync does, with logging off.
func buildDemoPass(_ context.Context, configPath string) (demo.Pass, error) {
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	r, err := newRunner(cfg, zap.NewNop())
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, dryRun bool) (*agent.Plan, error) {
		return r.Pass(ctx, agent.PassOptions{DryRun: dryRun})
	}, nil
}
