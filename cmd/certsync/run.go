package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/cmd/certsync/config"
	"github.com/certsync/certsync/state"
)

func newRunCommand() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the agent: a pass every schedule.interval until stopped",
		Long: `Runs a pass every schedule.interval. A failed pass is logged and tried again
with a backoff that doubles up to one hour. SIGINT or SIGTERM lets the pass in
flight finish, then exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := loadConfig(configPath, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			return runAgent(cmd.Context(), cfg, log)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "agent configuration file (required)")
	return cmd
}

func runAgent(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	// Held for the agent's life, so a second agent is refused even between
	// passes, when the state file itself is closed.
	unlock, err := state.LockAgent(cfg.State.Path)
	if err != nil {
		return err
	}
	defer func() { _ = unlock() }()
	p, err := newPipeline(cfg, log)
	if err != nil {
		return err
	}
	log.Info("certsync agent started", zap.String("version", buildVersion()), zap.Duration("interval", cfg.Schedule.Interval),
		zap.String("source", cfg.Source.URL), zap.String("state", cfg.State.Path))
	// The first pass and then one a day reconcile: they check every user's
	// values in the cloud, so hand edits there do not last.
	var lastReconcile time.Time
	return agent.Loop(ctx, cfg.Schedule.Interval, time.Hour, func(ctx context.Context) error {
		reconcile := time.Since(lastReconcile) >= reconcileEvery
		// A reconciling pass reads every user; the others read only what
		// changed, with a full read when schedule.fullInterval says.
		plan, err := p.runPass(ctx, passOptions{reconcile: reconcile, incremental: !reconcile})
		if err == nil && reconcile {
			lastReconcile = time.Now()
		}
		if plan != nil {
			s := plan.Stats
			log.Info("pass summary", zap.String("mode", plan.Mode), zap.String("fullReason", plan.FullReason),
				zap.Int("ldapOperations", s.LDAPOperations), zap.Int("usersRead", s.UsersRead), zap.Int("usersChanged", s.UsersChanged),
				zap.Int("valuesAdded", s.ValuesAdded), zap.Int("valuesRemoved", s.ValuesRemoved),
				zap.Int("usersUnmatched", s.UsersUnmatched), zap.Int("usersFailed", s.UsersFailed),
				zap.Int("certificatesRejected", s.CertificatesRejected))
			for _, u := range plan.Users {
				if u.Failed() {
					log.Warn("user not published", zap.String("user", u.Name), zap.String("dn", u.DN), zap.String("problem", problemOf(u)))
				}
			}
		}
		return err
	}, log)
}

// reconcileEvery is how often `certsync run` checks every user's values in
// the cloud rather than only those that changed on-prem.
const reconcileEvery = 24 * time.Hour

func problemOf(u *agent.UserPlan) string {
	if u.Problem != "" {
		return u.Problem
	}
	for _, t := range u.Targets {
		switch {
		case t.Err != nil:
			return fmt.Sprintf("%s: %v", t.Target, t.Err)
		case t.Problem != "":
			return fmt.Sprintf("%s: %s", t.Target, t.Problem)
		}
	}
	return ""
}
