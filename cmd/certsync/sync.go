package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/cmd/certsync/config"
	"github.com/certsync/certsync/state"
)

type syncOptions struct {
	configPath       string
	dryRun           bool
	user             string
	output           string
	detailedExitCode bool
	allowDeletes     bool
	reconcile        bool
	incremental      bool
}

func (o *syncOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.configPath, "config", "", "agent configuration file (required)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "compute and print the plan; write nothing to the cloud or the state file")
	fs.StringVar(&o.user, "user", "", "only this user: mail, userPrincipalName, sAMAccountName, uid or DN")
	fs.StringVar(&o.output, "output", "", "table or json (default: table on a terminal, json otherwise)")
	fs.BoolVar(&o.detailedExitCode, "detailed-exitcode", false, "exit 0 when nothing changes, 2 when changes are present or applied, 1 on error")
	fs.BoolVar(&o.allowDeletes, "allow-deletes", false, "let this one pass exceed the deletion limit (safety.*)")
	fs.BoolVar(&o.reconcile, "reconcile", false, "look up every user with values in the cloud, not only changed ones, and put right what was changed there by hand")
	fs.BoolVar(&o.incremental, "incremental", false, "read only the users changed in the directory since the last pass, as `certsync run` does between full reads")
}

func newSyncCommand() *cobra.Command {
	o := &syncOptions{}
	cmd := &cobra.Command{
		Use:   "sync --config FILE",
		Short: "Run one pass: read the directory, validate, publish changes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(o.output, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			cfg, log, err := loadConfig(o.configPath, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			return runSync(cmd.Context(), cfg, log, o, format, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runSync runs one pass and reports it. It returns exitCode for the
// outcomes --detailed-exitcode distinguishes, and an error (exit 1)
// otherwise.
func runSync(ctx context.Context, cfg *config.Config, log *zap.Logger, o *syncOptions, format string, out, errOut io.Writer) error {
	if !o.dryRun {
		// A real pass takes the agent lock too, so it cannot slip in
		// between the passes of a running agent.
		unlock, err := state.LockAgent(cfg.State.Path)
		if err != nil {
			return err
		}
		defer func() { _ = unlock() }()
	}
	if o.incremental && (o.user != "" || o.reconcile) {
		return fmt.Errorf("--incremental cannot be combined with --user or --reconcile")
	}
	p, err := newPipeline(cfg, log)
	if err != nil {
		return err
	}
	plan, passErr := p.runPass(ctx, passOptions{dryRun: o.dryRun, user: o.user, allowDeletes: o.allowDeletes, reconcile: o.reconcile, incremental: o.incremental})
	if plan == nil {
		return passErr
	}
	if err := report(out, format, plan, o.dryRun, passErr); err != nil {
		return err
	}
	switch {
	case passErr != nil:
		fmt.Fprintln(errOut, "certsync:", passErr)
		return exitCode(1)
	case plan.Guard.Tripped && !o.allowDeletes:
		// A dry run over the limit: the real pass would refuse.
		fmt.Fprintln(errOut, "certsync: deletion limit:", plan.Guard.Reason)
		return exitCode(1)
	case plan.Stats.UsersFailed > 0:
		fmt.Fprintf(errOut, "certsync: %d users failed; see the report\n", plan.Stats.UsersFailed)
		return exitCode(1)
	case o.detailedExitCode && plan.Stats.UsersChanged > 0:
		return exitCode(2)
	}
	return nil
}

func report(out io.Writer, format string, plan *agent.Plan, dryRun bool, passErr error) error {
	if format == "json" {
		return writeJSON(out, plan, dryRun, passErr)
	}
	return writeTable(out, plan, dryRun)
}

// outputFormat resolves --output; the default is a table for people at a
// terminal and JSON for scripts.
func outputFormat(flag string, out io.Writer) (string, error) {
	switch flag {
	case "table", "json":
		return flag, nil
	case "":
		if f, ok := out.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				return "table", nil
			}
		}
		return "json", nil
	}
	return "", fmt.Errorf("--output %q: use table or json", flag)
}
