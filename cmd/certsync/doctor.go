package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/agent/config"
	"github.com/certsync/certsync/agent/report"
	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/ldapsrc"
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
	var cs []report.Check
	for _, l := range doctorChecks(ctx, path) {
		cs = append(cs, report.Check{Area: l.area, Name: l.name, Status: l.status, Detail: l.detail, Fix: l.fix})
	}
	return report.WriteChecks(out, cs)
}

// doctorChecks loads the configuration and runs every check.
func doctorChecks(ctx context.Context, path string) []doctorLine {
	var lines []doctorLine
	if path == "" {
		return append(lines, doctorLine{"config", "load", "fail", "no configuration file given", "pass --config FILE"})
	}
	cfg, err := config.Load(path)
	if err != nil {
		return append(lines, doctorLine{"config", "load", "fail", err.Error(), "fix the key named in the message (agent.yaml.example documents every key)"})
	}
	lines = append(lines, doctorLine{"config", "load", "ok", path, ""})
	if *cfg.Safety.MaxDeletes == 0 && *cfg.Safety.MaxDeletePercent == 0 {
		lines = append(lines, doctorLine{"config", "safety", "warn", "safety.maxDeletes and safety.maxDeletePercent are both 0: no deletion limit, a pass may withdraw every user's certificates",
			"set a limit (the defaults are 500 users and 10%) unless that is really meant"})
	}
	// The checks report problems themselves; the log would only repeat
	// them.
	log := zap.NewNop()

	lines = append(lines, directoryChecks(ctx, cfg, log)...)
	return append(lines, cloudChecks(ctx, cfg, log)...)
}

// doctorLine is one check, from either side.
type doctorLine struct {
	area, name, status, detail, fix string
}

// directoryChecks checks every directory; with several, each line names
// its directory.
func directoryChecks(ctx context.Context, cfg *config.Config, log *zap.Logger) []doctorLine {
	// The attributes to check are the targets'; when they cannot be built
	// (the cloud checks say why), the default ones.
	targets, _ := newTargets(cfg, log, nil)
	identity, certs := agent.SourceAttributes(targets)
	opts := ldapsrc.DoctorOptions{CheckCRLs: cfg.Policy.CheckRevocation}
	if opts.CheckCRLs {
		var err error
		if opts.IssuingCAs, err = cfg.ReadCerts("policy.issuingCAFile", cfg.Policy.IssuingCAFile); err != nil {
			return []doctorLine{{"directory", "config", "fail", err.Error(), "check policy.issuingCAFile"}}
		}
	}
	var out []doctorLine
	for i, s := range cfg.Sources {
		area := "directory"
		if len(cfg.Sources) > 1 {
			area = "directory " + s.Name
		}
		lc, err := cfg.LDAPConfig(i, identity, certs)
		if err != nil {
			out = append(out, doctorLine{area, "config", "fail", err.Error(), "check the source's bind (password file or variable) and tls.caFile"})
			continue
		}
		o := opts
		o.AltSecurityIdentities = s.AltSecurityIdentities.Enabled
		for _, c := range ldapsrc.Diagnose(ctx, lc, o, log) {
			out = append(out, doctorLine{area, c.Name, c.Status, c.Detail, c.Fix})
		}
	}
	return out
}

func cloudChecks(ctx context.Context, cfg *config.Config, log *zap.Logger) []doctorLine {
	if !cfg.CloudTargets() {
		return nil // no cloud target: nothing of the cloud is used
	}
	cl := cfg.Cloud
	cred, roots, err := cfg.Credential()
	if err != nil {
		return []doctorLine{{"cloud", "credential", "fail", err.Error(), "check cloud.credential (the secret file or variable, the certificate file)"}}
	}
	var out []doctorLine
	// Exchange's trusted-CA collection is checked against these.
	issuingCAs, err := cfg.ReadCerts("policy.issuingCAFile", cfg.Policy.IssuingCAFile)
	if err != nil && cl.Exchange.Enabled {
		out = append(out, doctorLine{"cloud", "exchange trust", "skip", err.Error(), "check policy.issuingCAFile"})
	}
	for _, o := range []struct{ key, val string }{
		{"cloud.graphEndpoint", cl.GraphEndpoint}, {"cloud.authorityHost", cl.AuthorityHost}, {"cloud.exchange.endpoint", cl.Exchange.Endpoint},
	} {
		if o.val == "" {
			continue
		}
		// Load checked them; what is left to say is where tokens go.
		if h, err := cl.Settings.CheckOverride(o.key, o.val); err == nil && h.Listed {
			out = append(out, doctorLine{"cloud", "endpoints", "warn",
				fmt.Sprintf("%s sends the app's tokens to %s, which is not a Microsoft host of the %s cloud: allowed only because cloud.dangerouslyAllowedHosts lists it", o.key, h.Host, cl.Environment),
				"remove the override (and the host from cloud.dangerouslyAllowedHosts) unless that host is yours and meant to receive the tokens"})
		}
	}
	for _, c := range cloudsink.Diagnose(ctx, cloudsink.DoctorConfig{
		Credential: cred, Environment: cl.Environment, TenantID: cl.TenantID, RootCAs: roots,
		GraphEndpoint: cl.GraphEndpoint, ExchangeEndpoint: cl.Exchange.Endpoint, AuthorityHost: cl.AuthorityHost,
		Graph: cl.CertificateUserIDs.On(), Exchange: cl.Exchange.Enabled,
		IssuingCAs: issuingCAs, SmimeIssuingCAs: cl.Exchange.SmimeIssuingCAs,
	}, log) {
		out = append(out, doctorLine{"cloud", c.Name, c.Status, c.Detail, c.Fix})
	}
	return out
}
