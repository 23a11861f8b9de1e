package main

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/agent/metrics"
	"github.com/certsync/certsync/agent/sdnotify"
	"github.com/certsync/certsync/agent/winsvc"
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
recently and the last one did not fail, else 503). Under systemd
(Type=notify) it reports READY, its last pass as STATUS, and WATCHDOG while
passes keep finishing; on Windows it answers the service control manager.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runService(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// watchdogLimit is how long the agent may go without finishing a pass
// before the service manager's watchdog calls it stuck: longer than the
// longest backoff (1h) and a long pass together.
const watchdogLimit = 2 * time.Hour

// runService runs the agent in the foreground (under systemd or a shell)
// or, when Windows' service control manager started it, as the service:
// answering the manager, logging to the Event Log and to
// %ProgramData%\certsync\certsync.log.
func runService(ctx context.Context, o *runOptions, errOut io.Writer) error {
	if isService, err := winsvc.IsService(); err != nil || !isService {
		return runAgent(ctx, o, errOut, nil)
	}
	return winsvc.Run(serviceName, func(ctx context.Context, s *winsvc.Session) error {
		return runAgent(ctx, o, s.LogFile, s)
	})
}

// runAgent runs the agent until ctx ends; a Windows service's session
// (nil otherwise) also gets the log and is told once the agent runs (lock
// held, metrics served).
func runAgent(ctx context.Context, o *runOptions, errOut io.Writer, svc *winsvc.Session) error {
	cfg, log, err := loadConfig(o.configPath, errOut)
	if err != nil {
		return err
	}
	log = svc.Logger(log)
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
		addr, err := metrics.Listen(ctx, o.metricsListen, m.Handler(metrics.HealthMaxAge(cfg.Schedule.Interval)), log)
		if err != nil {
			return err
		}
		log.Info("serving metrics", zap.String("addr", addr.String()))
	}
	notify, err := sdnotify.FromEnv(os.Getenv, os.Getpid())
	if err != nil {
		log.Warn("service manager watchdog off", zap.Error(err))
	}
	live := agent.NewLiveness(cfg.Schedule.Interval+watchdogLimit, time.Now)
	observe := []func(agent.PassOutcome){live.Observe, func(po agent.PassOutcome) { _ = notify.Status(po.String()) }}
	r, err := newObservedRunner(cfg, log, m, observe...)
	if err != nil {
		return err
	}
	log.Info("certsync agent started", zap.String("version", buildVersion()), zap.Duration("interval", cfg.Schedule.Interval),
		zap.Strings("sources", cfg.SourceNames()), zap.String("state", cfg.State.Path), zap.Bool("systemd", notify.Enabled()))
	status := "running: first pass under way, then one every " + cfg.Schedule.Interval.String()
	if err := notify.Ready(status); err != nil {
		log.Warn("telling systemd the agent is ready", zap.Error(err))
	}
	svc.Started()
	keep, stopKeep := context.WithCancel(ctx)
	defer stopKeep()
	go notify.KeepAlive(keep, live.Alive)
	err = r.Run(ctx, cfg.Schedule.Interval)
	_ = notify.Stopping("stopping: the pass in flight has finished")
	return err
}
