package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/agent/config"
	"github.com/certsync/certsync/agent/report"
	"github.com/certsync/certsync/state"
)

type syncOptions struct {
	configPath       string
	dryRun           bool
	user             string
	output           string
	detailedExitCode bool
	allowDeletes     int
	reconcile        bool
	reclaim          bool
	incremental      bool
	withdraw         string
}

func (o *syncOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.configPath, "config", "", "agent configuration file (required)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "compute and print the plan; write nothing to the cloud or the state file")
	fs.StringVar(&o.user, "user", "", "only this user: mail, userPrincipalName, sAMAccountName, uid or DN")
	fs.StringVar(&o.output, "output", "", "table, json, html (one self-contained page) or csv (a row per certificate); default: table on a terminal, json otherwise")
	fs.BoolVar(&o.detailedExitCode, "detailed-exitcode", false, "exit 0 when nothing changes, 2 when changes are present or applied, 1 on error")
	fs.IntVar(&o.allowDeletes, "allow-deletes", 0, "`N`: let this one pass exceed the deletion limit (safety.*) by stripping values from up to N users, the number the dry run shows")
	fs.Lookup("allow-deletes").NoOptDefVal = "-1" // bare: refused by the runner
	fs.BoolVar(&o.reconcile, "reconcile", false, "look up every user with values in the cloud, not only changed ones, and put right what was changed there by hand")
	fs.BoolVar(&o.reclaim, "reclaim", false, "after a lost state file: take back as certsync's own the cloud values it derives from certificates on each user's directory entry (implies --reconcile)")
	fs.BoolVar(&o.incremental, "incremental", false, "read only the users changed in the directory since the last pass, as `certsync run` does between full reads")
	fs.StringVar(&o.withdraw, "withdraw", "", "remove every value certsync wrote to this target (only "+agent.TargetAltSecurityIdentities+"), whether or not it is still enabled; behind the deletion limit")
}

func newSyncCommand() *cobra.Command {
	o := &syncOptions{}
	cmd := &cobra.Command{
		Use:   "sync --config FILE",
		Short: "Run one pass: read the directories, validate, publish changes",
		Long: `Runs one pass and prints its report. Exit status: 0 when the pass went well (users
without a cloud account, users still synced by Entra Connect and rejected certificates
are reported, not errors); 1 when the pass or a write failed (a directory could not be
read, the deletion limit, a conflict, a lookup or write the cloud refused or did not
answer); with --detailed-exitcode, 2 when changes are present (dry run) or were applied.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := report.Format(o.output, cmd.OutOrStdout(), "html", "csv")
			if err != nil {
				return err
			}
			if o.incremental && (o.user != "" || o.reconcile || o.reclaim || o.withdraw != "") {
				return errors.New("--incremental cannot be combined with --user, --reconcile, --reclaim or --withdraw")
			}
			cfg, log, err := loadConfig(o.configPath, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := cfg.Withdraw(o.withdraw); err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			r, err := newRunner(cfg, log)
			if err != nil {
				return err
			}
			return runSync(cmd.Context(), cfg, r, o, format, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runSync runs one pass and reports it. It returns exitCode for the
// outcomes the exit status distinguishes, and an error (exit 1) when no
// report could be made.
func runSync(ctx context.Context, cfg *config.Config, r *agent.Runner, o *syncOptions, format string, out, errOut io.Writer) error {
	if !o.dryRun {
		// A real pass takes the agent lock too, so it cannot slip in
		// between the passes of a running agent.
		unlock, err := state.LockAgent(cfg.State.Path)
		if err != nil {
			return err
		}
		defer func() { _ = unlock() }()
	}
	plan, passErr := r.Pass(ctx, agent.PassOptions{
		PlanOptions: agent.PlanOptions{User: o.user, Reconcile: o.reconcile, Reclaim: o.reclaim, Incremental: o.incremental},
		DryRun:      o.dryRun, AllowDeletes: o.allowDeletes,
	})
	if plan == nil {
		return passErr
	}
	defer func() { _ = plan.Close() }()
	if err := report.Write(out, format, plan, o.dryRun, passErr); err != nil {
		return err
	}
	switch {
	case passErr != nil:
		fmt.Fprintln(errOut, "certsync:", passErr)
		return exitCode(1)
	case plan.Guard.Tripped && plan.Guard.UsersRemoving > o.allowDeletes:
		// A dry run over the limit: the real pass would refuse.
		fmt.Fprintln(errOut, "certsync: deletion limit:", plan.Guard.Reason)
		return exitCode(1)
	case plan.Stats.UsersFailed > 0:
		fmt.Fprintf(errOut, "certsync: %d users failed; see the report\n", plan.Stats.UsersFailed)
		return exitCode(1)
	case o.detailedExitCode && (plan.Stats.UsersChanged > 0 || plan.TenantChanges() > 0):
		return exitCode(2)
	}
	return nil
}
