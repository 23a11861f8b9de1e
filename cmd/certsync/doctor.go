package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/agent/config"
	"github.com/certsync/certsync/agent/doctor"
	"github.com/certsync/certsync/agent/report"
)

type doctorOptions struct {
	configPath string
}

func newDoctorCommand() *cobra.Command {
	o := &doctorOptions{}
	cmd := &cobra.Command{
		Use:   "doctor --config FILE",
		Short: "Check the configuration end to end: directory, TLS, bind, scope, change tracking, CRLs, cloud credential and permissions",
		Long: `Runs every check certsync depends on, in order, and prints one line per check
with what to fix. It writes nothing anywhere. Exits 1 when a check failed,
0 otherwise (warnings included).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			failed := runDoctor(cmd.Context(), o.configPath, cmd.OutOrStdout())
			if failed > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "certsync doctor: failed checks: %d\n", failed)
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.configPath, "config", "", "agent configuration file (required)")
	return cmd
}

// runDoctor runs the checks and prints them; it returns how many failed.
func runDoctor(ctx context.Context, path string, out io.Writer) int {
	targets := func(cfg *config.Config, log *zap.Logger) ([]agent.Target, error) { return newTargets(cfg, log, nil) }
	return report.WriteChecks(out, doctor.Run(ctx, path, targets))
}
