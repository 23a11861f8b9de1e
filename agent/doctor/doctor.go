package doctor

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/agent/config"
	"github.com/certsync/certsync/agent/report"
	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/ldapsrc"
)

// Targets builds the configured targets (the command's wiring); the
// checks ask them which directory attributes a pass reads.
type Targets func(*config.Config, *zap.Logger) ([]agent.Target, error)

// Run loads the configuration at path and runs every check, in order:
// the configuration, each directory, the cloud. It writes nothing.
func Run(ctx context.Context, path string, targets Targets) []report.Check {
	var lines []report.Check
	if path == "" {
		return append(lines, check("config", "load", "fail", "no configuration file given", "pass --config FILE"))
	}
	cfg, err := config.Load(path)
	if err != nil {
		return append(lines, check("config", "load", "fail", err.Error(), "fix the key named in the message (agent.yaml.example documents every key)"))
	}
	lines = append(lines, check("config", "load", "ok", path, ""))
	if *cfg.Safety.MaxDeletes == 0 && *cfg.Safety.MaxDeletePercent == 0 {
		lines = append(lines, check("config", "safety", "warn", "safety.maxDeletes and safety.maxDeletePercent are both unlimited: no deletion limit, a pass may withdraw every user's certificates",
			"set a limit (the defaults are 500 users and 10%) unless that is really meant"))
	}
	// The checks report problems themselves; the log would only repeat
	// them.
	log := zap.NewNop()

	lines = append(lines, directoryChecks(ctx, cfg, targets, log)...)
	return append(lines, cloudChecks(ctx, cfg, log)...)
}

// directoryChecks checks every directory; with several, each line names
// its directory.
func directoryChecks(ctx context.Context, cfg *config.Config, newTargets Targets, log *zap.Logger) []report.Check {
	// The attributes to check are the targets'; when they cannot be built
	// (the cloud checks say why), the default ones.
	targets, _ := newTargets(cfg, log)
	identity, certs := agent.SourceAttributes(targets)
	opts := ldapsrc.DoctorOptions{CheckCRLs: cfg.Policy.CheckRevocation}
	if opts.CheckCRLs {
		var err error
		if opts.IssuingCAs, err = cfg.ReadCerts("policy.issuingCAFile", cfg.Policy.IssuingCAFile); err != nil {
			return []report.Check{check("directory", "config", "fail", err.Error(), "check policy.issuingCAFile")}
		}
	}
	var out []report.Check
	for i, s := range cfg.Sources {
		area := "directory"
		if len(cfg.Sources) > 1 {
			area = "directory " + s.Name
		}
		lc, err := cfg.LDAPConfig(i, identity, certs)
		if err != nil {
			out = append(out, check(area, "config", "fail", err.Error(), "check the source's bind (password file or variable) and tls.caFile"))
			continue
		}
		o := opts
		o.AltSecurityIdentities = s.AltSecurityIdentities.Enabled
		for _, c := range ldapsrc.Diagnose(ctx, lc, o, log) {
			out = append(out, check(area, c.Name, c.Status, c.Detail, c.Fix))
		}
	}
	return out
}

func cloudChecks(ctx context.Context, cfg *config.Config, log *zap.Logger) []report.Check {
	if !cfg.CloudTargets() {
		return nil // no cloud target: nothing of the cloud is used
	}
	cl := cfg.Cloud
	cred, roots, err := cfg.Credential()
	if err != nil {
		return []report.Check{check("cloud", "credential", "fail", err.Error(), "check cloud.credential (the secret file or variable, the certificate file)")}
	}
	var out []report.Check
	// Exchange's trusted-CA collection is checked against these.
	issuingCAs, err := cfg.ReadCerts("policy.issuingCAFile", cfg.Policy.IssuingCAFile)
	if err != nil && cl.Exchange.Enabled {
		out = append(out, check("cloud", "exchange trust", "skip", err.Error(), "check policy.issuingCAFile"))
	}
	for _, o := range []struct{ key, val string }{
		{"cloud.graphEndpoint", cl.GraphEndpoint}, {"cloud.authorityHost", cl.AuthorityHost}, {"cloud.exchange.endpoint", cl.Exchange.Endpoint},
	} {
		if o.val == "" {
			continue
		}
		// Load checked them; what is left to say is where tokens go.
		if h, err := cl.Settings.CheckOverride(o.key, o.val); err == nil && h.Listed {
			out = append(out, check("cloud", "endpoints", "warn",
				fmt.Sprintf("%s sends the app's tokens to %s, which is not a Microsoft host of the %s cloud: allowed only because cloud.dangerouslyAllowedHosts lists it", o.key, h.Host, cl.Environment),
				"remove the override (and the host from cloud.dangerouslyAllowedHosts) unless that host is yours and meant to receive the tokens"))
		}
	}
	for _, c := range cloudsink.Diagnose(ctx, cloudsink.DoctorConfig{
		Credential: cred, Environment: cl.Environment, TenantID: cl.TenantID, RootCAs: roots,
		GraphEndpoint: cl.GraphEndpoint, ExchangeEndpoint: cl.Exchange.Endpoint, AuthorityHost: cl.AuthorityHost,
		Graph: cl.CertificateUserIDs.On(), Exchange: cl.Exchange.Enabled,
		IssuingCAs: issuingCAs, SmimeIssuingCAs: cl.Exchange.SmimeIssuingCAs,
	}, log) {
		out = append(out, check("cloud", c.Name, c.Status, c.Detail, c.Fix))
	}
	return out
}

func check(area, name, status, detail, fix string) report.Check {
	return report.Check{Area: area, Name: name, Status: status, Detail: detail, Fix: fix}
}
