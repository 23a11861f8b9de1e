package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/agent/config"
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
				fmt.Fprintf(cmd.ErrOrStderr(), "certsync doctor: %s failed\n", checks(failed))
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.configPath, "config", "", "agent configuration file (required)")
	return cmd
}

// doctorLine is one check, from either side.
type doctorLine struct {
	area, name, status, detail, fix string
}

// runDoctor runs the checks and prints them; it returns how many failed.
func runDoctor(ctx context.Context, path string, out io.Writer) int {
	var lines []doctorLine
	defer func() { printDoctor(out, lines) }()
	if path == "" {
		lines = append(lines, doctorLine{"config", "load", "fail", "no configuration file given", "pass --config FILE"})
		return 1
	}
	cfg, err := config.Load(path)
	if err != nil {
		lines = append(lines, doctorLine{"config", "load", "fail", err.Error(), "fix the key named in the message (agent.yaml.example documents every key)"})
		return 1
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
	lines = append(lines, cloudChecks(ctx, cfg, log)...)
	failed := 0
	for _, l := range lines {
		if l.status == "fail" {
			failed++
		}
	}
	return failed
}

// directoryChecks checks every directory; with several, each line names
// its directory.
func directoryChecks(ctx context.Context, cfg *config.Config, log *zap.Logger) []doctorLine {
	// The attributes to check are the targets'; when they cannot be built
	// (the cloud checks say why), the default ones.
	targets, _ := newTargets(cfg, log)
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
		for _, c := range ldapsrc.Diagnose(ctx, lc, opts, log) {
			out = append(out, doctorLine{area, c.Name, c.Status, c.Detail, c.Fix})
		}
	}
	return out
}

func cloudChecks(ctx context.Context, cfg *config.Config, log *zap.Logger) []doctorLine {
	cl := cfg.Cloud
	cred, roots, err := cfg.Credential()
	if err != nil {
		return []doctorLine{{"cloud", "credential", "fail", err.Error(), "check cloud.credential (the secret file or variable, the certificate file)"}}
	}
	var out []doctorLine
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
	}, log) {
		out = append(out, doctorLine{"cloud", c.Name, c.Status, c.Detail, c.Fix})
	}
	return out
}

func printDoctor(w io.Writer, lines []doctorLine) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, l := range lines {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.ToUpper(l.status), l.area, l.name, oneLine(l.detail))
		if l.fix != "" && l.status != "ok" {
			fmt.Fprintf(tw, "\t\t\tfix: %s\n", oneLine(l.fix))
		}
	}
	_ = tw.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func checks(n int) string {
	if n == 1 {
		return "1 check"
	}
	return fmt.Sprintf("%d checks", n)
}
