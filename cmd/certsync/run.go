package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/certsync/certsync/agent/metrics"
	"github.com/certsync/certsync/state"
)

type runOptions struct {
	configPath    string
	metricsListen string
}

func (o *runOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.configPath, "config", "", "agent configuration file (required)")
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus /metrics and /healthz on this address (e.g. 127.0.0.1:9471); off when empty")
}

func newRunCommand() *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the agent: a pass every schedule.interval until stopped",
		Long: `Runs a pass every schedule.interval. A failed pass is logged and tried again
with a backoff that doubles up to one hour. SIGINT or SIGTERM lets the pass in
flight finish, then exits 0. With --metrics-listen, serves Prometheus metrics
at /metrics and the agent's health at /healthz (200 when a pass succeeded
recently and the last one did not fail, else 503).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := loadConfig(o.configPath, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			// Held for the agent's life, so a second agent is refused even
			// between passes, when the state file itself is closed.
			unlock, err := state.LockAgent(cfg.State.Path)
			if err != nil {
				return err
			}
			defer func() { _ = unlock() }()
			var m *metrics.Metrics
			if o.metricsListen != "" {
				m = metrics.New()
				addr, err := metrics.Listen(cmd.Context(), o.metricsListen, m.Handler(metrics.HealthMaxAge(cfg.Schedule.Interval)), log)
				if err != nil {
					return err
				}
				log.Info("serving metrics", zap.String("addr", addr.String()))
			}
			r, err := newMeteredRunner(cfg, log, m)
			if err != nil {
				return err
			}
			log.Info("certsync agent started", zap.String("version", buildVersion()), zap.Duration("interval", cfg.Schedule.Interval),
				zap.Strings("sources", cfg.SourceNames()), zap.String("state", cfg.State.Path))
			return r.Run(cmd.Context(), cfg.Schedule.Interval)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
