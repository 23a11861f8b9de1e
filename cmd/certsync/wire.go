package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/agent/config"
	"github.com/certsync/certsync/agent/metrics"
	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/ldapsrc"
)

// loadConfig loads --config and builds the logger it asks for, writing to
// errOut.
func loadConfig(path string, errOut io.Writer) (*config.Config, *zap.Logger, error) {
	if path == "" {
		return nil, nil, errors.New("--config is required")
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	log, err := cfg.Logger(errOut)
	if err != nil {
		return nil, nil, err
	}
	return cfg, log, nil
}

// newRunner builds the parts a pass needs from the configuration: the
// targets over one credential, the directories, the policy.
func newRunner(cfg *config.Config, log *zap.Logger) (*agent.Runner, error) {
	return newObservedRunner(cfg, log, nil)
}

// newObservedRunner is newRunner whose passes are told to observe and
// whose cloud retry waits feed m (when not nil).
func newObservedRunner(cfg *config.Config, log *zap.Logger, m *metrics.Metrics, observe ...func(agent.PassOutcome)) (*agent.Runner, error) {
	pol, err := cfg.MappingPolicy()
	if err != nil {
		return nil, err
	}
	targets, err := newTargets(cfg, log, m)
	if err != nil {
		return nil, err
	}
	identity, certs := agent.SourceAttributes(targets)
	var sources []agent.SourceOpener
	for i, s := range cfg.Sources {
		lc, err := cfg.LDAPConfig(i, identity, certs)
		if err != nil {
			return nil, err
		}
		slog := log.Named("ldap").With(zap.String("source", s.Name))
		sources = append(sources, agent.SourceOpener{
			Name: s.Name,
			Open: func(ctx context.Context) (agent.Source, error) { return ldapsrc.Open(ctx, lc, slog) },
			Watch: func(ctx context.Context, ready, changed func()) error {
				return ldapsrc.Watch(ctx, lc, slog.Named("watch"), ready, changed)
			},
		})
	}
	rc := agent.RunnerConfig{
		Sources: sources, StatePath: cfg.State.Path, Targets: targets, Policy: pol, Log: log,
		Safety:       agent.Safety{MaxDeletes: *cfg.Safety.MaxDeletes, MaxDeletePercent: *cfg.Safety.MaxDeletePercent},
		FullInterval: cfg.Schedule.FullInterval,
		PassTimeout:  cfg.Schedule.PassTimeout,
	}
	if m != nil {
		observe = append(observe, m.ObservePass)
	}
	rc.Observe = func(o agent.PassOutcome) {
		for _, f := range observe {
			f(o)
		}
	}
	return agent.NewRunner(rc)
}

// newTargets builds the enabled targets, in report order.
func newTargets(cfg *config.Config, log *zap.Logger, m *metrics.Metrics) ([]agent.Target, error) {
	targets, err := newCloudTargets(cfg, log, m)
	if err != nil {
		return nil, err
	}
	if cfg.ADTarget() {
		t, err := newADTarget(cfg, log)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// newADTarget builds the altSecurityIdentities target: one connection of
// its own per directory that enables it, opened on first use.
func newADTarget(cfg *config.Config, log *zap.Logger) (agent.Target, error) {
	var sources []agent.ADSource
	for i, s := range cfg.Sources {
		if !s.AltSecurityIdentities.Enabled && !s.AltSecurityIdentities.Withdraw {
			continue
		}
		lc, err := cfg.LDAPConfig(i, nil, nil)
		if err != nil {
			return nil, err
		}
		alog := log.Named("ad").With(zap.String("source", s.Name))
		sources = append(sources, agent.ADSource{Name: s.Name, Settings: s.AltSecurityIdentities, Open: func(ctx context.Context) (agent.ADDirectory, error) {
			return ldapsrc.Open(ctx, lc, alog)
		}})
	}
	return agent.NewADTarget(sources)
}

// newCloudTargets builds the enabled cloud targets over one credential;
// none (and no credential) when the configuration enables none. Their
// retry waits feed m (when not nil).
func newCloudTargets(cfg *config.Config, log *zap.Logger, m *metrics.Metrics) ([]agent.Target, error) {
	if !cfg.CloudTargets() {
		return nil, nil
	}
	var graphWait, exchangeWait func(time.Duration)
	if m != nil {
		graphWait, exchangeWait = m.RetryWait("graph"), m.RetryWait("exchange")
	}
	cl := cfg.Cloud
	cred, roots, err := cfg.Credential()
	if err != nil {
		return nil, err
	}
	var targets []agent.Target
	if cl.CertificateUserIDs.On() {
		sink, err := cloudsink.NewGraph(cloudsink.GraphConfig{Environment: cl.Environment, Endpoint: cl.GraphEndpoint, Credential: cred, RootCAs: roots, OnRetryWait: graphWait}, log.Named("graph"))
		if err != nil {
			return nil, fmt.Errorf("cloud: %w", err)
		}
		t, err := agent.NewGraphTarget(cl.CertificateUserIDs, cl.Match, sink)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	if x := cl.Exchange; x.Enabled {
		sink, err := cloudsink.NewExchange(cloudsink.ExchangeConfig{
			Environment: cl.Environment, Endpoint: x.Endpoint, TenantID: cl.TenantID, Credential: cred, RootCAs: roots, OnRetryWait: exchangeWait,
		}, log.Named("exchange"))
		if err != nil {
			return nil, fmt.Errorf("cloud.exchange: %w", err)
		}
		t, err := agent.NewExchangeTarget(x, sink)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	return targets, nil
}
