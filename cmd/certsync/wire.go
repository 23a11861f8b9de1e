package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/cmd/certsync/config"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
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
	log, err := newLogger(cfg.Log, errOut)
	if err != nil {
		return nil, nil, err
	}
	return cfg, log, nil
}

// newLogger builds the zap logger the config asks for, writing to w.
func newLogger(c config.Log, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if c.Format == "console" {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		enc = zapcore.NewJSONEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}

// pipeline is everything one pass needs, built from the configuration.
// The cloud side is built once; the directory connection and the state
// file are opened per pass so that `certsync status` can read the file
// between passes.
type pipeline struct {
	cfg    *config.Config
	log    *zap.Logger
	sinks  []agent.SinkSpec
	policy mapping.Policy
	ldap   ldapsrc.Config
	// fingerprint changes whenever what decides a user's values changes,
	// so that a change-tracking watermark from before is not trusted.
	fingerprint string
	// crls keeps the CRLs between the passes of `certsync run`.
	crls agent.CRLCache
}

func newPipeline(cfg *config.Config, log *zap.Logger) (*pipeline, error) {
	p := &pipeline{cfg: cfg, log: log}
	var err error
	if p.policy, err = buildPolicy(cfg); err != nil {
		return nil, err
	}
	if p.ldap, err = buildLDAPConfig(cfg); err != nil {
		return nil, err
	}
	if p.sinks, err = buildSinks(cfg, log); err != nil {
		return nil, err
	}
	p.fingerprint = fingerprint(cfg, p.policy)
	return p, nil
}

func buildPolicy(cfg *config.Config) (mapping.Policy, error) {
	cas, err := cfg.ReadCerts("policy.issuingCAFile", cfg.Policy.IssuingCAFile)
	if err != nil {
		return mapping.Policy{}, err
	}
	return mapping.Policy{
		IssuingCAs:      cas,
		RequireSKI:      *cfg.Policy.RequireSKI,
		ExtKeyUsages:    cfg.ExtKeyUsageList(),
		SkipExpired:     *cfg.Policy.SkipExpired,
		MaxCertificates: cfg.Policy.MaxCertificates,
		// The revocation set itself is read from the directory by the
		// agent at each pass (and kept until the CAs publish again).
		CheckRevocation:       cfg.Policy.CheckRevocation,
		RevocationUnavailable: cfg.Policy.RevocationUnavailable,
	}, nil
}

func buildLDAPConfig(cfg *config.Config) (ldapsrc.Config, error) {
	s := cfg.Source
	var pw config.Secret
	var err error
	if s.Bind.Method == "simple" {
		if pw, err = cfg.LDAPPassword(); err != nil {
			return ldapsrc.Config{}, err
		}
	}
	var roots *x509.CertPool
	if s.TLS.CAFile != "" {
		if roots, err = cfg.ReadCertPool("source.tls.caFile", s.TLS.CAFile); err != nil {
			return ldapsrc.Config{}, err
		}
	}
	ids := addNames([]string{"mail", "userPrincipalName", "sAMAccountName", "uid"}, cfg.Cloud.Match.SourceAttribute)
	certAttrs := []string{mapping.AttrUserCertificate, mapping.AttrUserSMIMECertificate}
	if cfg.Cloud.Exchange.Enabled {
		ids = addNames(ids, cfg.Cloud.Exchange.Match.SourceAttribute)
		certAttrs = addNames(certAttrs, slices.Sorted(maps.Keys(cfg.Cloud.Exchange.Mapping))...)
	}
	return ldapsrc.Config{
		URL:                   s.URL,
		BaseDN:                s.BaseDN,
		Filter:                s.Filter,
		AnchorAttribute:       s.AnchorAttribute,
		IdentityAttributes:    ids,
		CertificateAttributes: certAttrs,
		PageSize:              s.PageSize,
		ChangeTracking:        s.ChangeTracking,
		Bind: ldapsrc.Bind{Method: s.Bind.Method, Username: s.Bind.Username, Password: pw.Reveal(),
			Keytab: cfg.Path(s.Bind.KeytabFile), CCache: cfg.Path(s.Bind.CCacheFile), Realm: s.Bind.Realm, SPN: s.Bind.SPN, Krb5Conf: cfg.Path(s.Bind.Krb5ConfFile)},
		TLS: ldapsrc.TLS{RootCAs: roots, ServerName: s.TLS.ServerName, InsecureSkipVerify: s.TLS.DangerouslySkipVerify},
	}, nil
}

// addNames appends the attribute names list does not hold yet (LDAP names
// compare case-insensitively).
func addNames(list []string, names ...string) []string {
	for _, n := range names {
		if !slices.ContainsFunc(list, func(l string) bool { return strings.EqualFold(l, n) }) {
			list = append(list, n)
		}
	}
	return list
}

// buildCredential builds the one credential both cloud services use (it
// caches a token per resource) and the trust for their TLS.
func buildCredential(cfg *config.Config) (azcore.TokenCredential, *x509.CertPool, error) {
	cl := cfg.Cloud
	var roots *x509.CertPool
	if cl.CAFile != "" {
		// Added to the system's roots, not instead of them: the file may
		// name a proxy's or an emulator's CA, and the real login and Graph
		// hosts must still verify.
		extra, err := cfg.ReadCerts("cloud.caFile", cl.CAFile)
		if err != nil {
			return nil, nil, err
		}
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		for _, c := range extra {
			roots.AddCert(c)
		}
	}
	cc := cloudsink.CredentialConfig{
		Method: cl.Credential.Method, TenantID: cl.TenantID, ClientID: cl.ClientID,
		TokenFile: cfg.Path(cl.Credential.TokenFile), AuthorityHost: cl.AuthorityHost, RootCAs: roots, Environment: cl.Environment,
	}
	switch cl.Credential.Method {
	case "secret":
		sec, err := cfg.ClientSecret()
		if err != nil {
			return nil, nil, err
		}
		cc.Secret = sec.Reveal()
	case "certificate":
		pem, err := os.ReadFile(cfg.Path(cl.Credential.CertificateFile))
		if err != nil {
			return nil, nil, fmt.Errorf("cloud.credential.certificateFile: %w", err)
		}
		cc.CertificatePEM = pem
	}
	cred, err := cloudsink.NewCredential(cc)
	if err != nil {
		return nil, nil, fmt.Errorf("cloud.credential: %w", err)
	}
	return cred, roots, nil
}

func buildSinks(cfg *config.Config, log *zap.Logger) ([]agent.SinkSpec, error) {
	cl := cfg.Cloud
	cred, roots, err := buildCredential(cfg)
	if err != nil {
		return nil, err
	}
	var specs []agent.SinkSpec
	if cl.CertificateUserIDs.On() {
		graph, err := cloudsink.NewGraph(cloudsink.GraphConfig{
			Environment: cl.Environment, Endpoint: cl.GraphEndpoint, Credential: cred, RootCAs: roots,
		}, log.Named("graph"))
		if err != nil {
			return nil, fmt.Errorf("cloud: %w", err)
		}
		var kinds []mapping.BindingKind
		for _, b := range cl.CertificateUserIDs.Bindings {
			k, err := mapping.ParseBindingKind(b)
			if err != nil {
				return nil, fmt.Errorf("cloud.certificateUserIds.bindings: %w", err)
			}
			kinds = append(kinds, k)
		}
		specs = append(specs, agent.SinkSpec{
			Sink:  graph,
			Match: agent.Match{SourceAttribute: cl.Match.SourceAttribute, CloudProperty: cl.Match.CloudProperty},
			Desired: map[string]func(mapping.Evaluation) []string{
				cloudsink.TargetCertificateUserIDs: func(ev mapping.Evaluation) []string {
					return mapping.CertificateUserIDs(ev.Accepted, kinds)
				},
			},
		})
	}
	if x := cl.Exchange; x.Enabled {
		exo, err := cloudsink.NewExchange(cloudsink.ExchangeConfig{
			Environment: cl.Environment, Endpoint: x.Endpoint, TenantID: cl.TenantID, Credential: cred, RootCAs: roots,
		}, log.Named("exchange"))
		if err != nil {
			return nil, fmt.Errorf("cloud.exchange: %w", err)
		}
		specs = append(specs, agent.SinkSpec{
			Sink:          exo,
			Account:       "mailbox",
			Match:         agent.Match{SourceAttribute: x.Match.SourceAttribute, CloudProperty: x.Match.CloudProperty},
			AdoptExisting: x.AdoptExisting,
			Desired: map[string]func(mapping.Evaluation) []string{
				cloudsink.TargetUserCertificate:      mailboxValues(x.Mapping, config.MailboxUserCertificate),
				cloudsink.TargetUserSMimeCertificate: mailboxValues(x.Mapping, config.MailboxUserSMimeCertificate),
			},
		})
	}
	if len(specs) == 0 {
		return nil, errors.New("no cloud target is enabled (cloud.certificateUserIds, cloud.exchange)")
	}
	return specs, nil
}

// mailboxValues renders the accepted certificates found in the LDAP
// attributes that feed one mailbox attribute, newest first (the order
// Evaluate keeps), as the Exchange sink's values: base64 of the DER. The
// sink's limit of 15 is applied by the plan, which reports what it leaves
// out.
func mailboxValues(feeds map[string]string, mailboxAttr string) func(mapping.Evaluation) []string {
	var sources []string
	for ldapAttr, box := range feeds {
		if box == mailboxAttr {
			sources = append(sources, ldapAttr)
		}
	}
	fedBy := func(attr string) bool {
		return slices.ContainsFunc(sources, func(s string) bool { return strings.EqualFold(s, attr) })
	}
	return func(ev mapping.Evaluation) []string {
		var out []string
		for _, c := range ev.Accepted {
			if slices.ContainsFunc(c.Attributes, fedBy) {
				out = append(out, base64.StdEncoding.EncodeToString(c.Cert.Raw))
			}
		}
		return out
	}
}

// passOptions say what one pass does.
type passOptions struct {
	dryRun       bool
	user         string
	allowDeletes bool
	reconcile    bool
	incremental  bool
}

// runPass opens the directory and the state file, plans, and (unless dry
// run) applies. The plan comes back even when applying failed, so that the
// caller can show what happened; err is the pass's error.
func (p *pipeline) runPass(ctx context.Context, o passOptions) (*agent.Plan, error) {
	store, closeStore, err := openStore(p.cfg.State.Path, o.dryRun)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	// The source is opened lazily by the agent's first read, so that a
	// directory that cannot be reached is recorded as a failed pass.
	src := &lazySource{open: func(ctx context.Context) (*ldapsrc.Source, error) {
		return ldapsrc.Open(ctx, p.ldap, p.log.Named("ldap"))
	}}
	defer src.Close()
	a, err := agent.New(agent.Options{
		Source: src, Store: store, Sinks: p.sinks, Policy: p.policy, Log: p.log,
		Safety:   agent.Safety{MaxDeletes: *p.cfg.Safety.MaxDeletes, MaxDeletePercent: *p.cfg.Safety.MaxDeletePercent},
		Tracking: agent.Tracking{Fingerprint: p.fingerprint, FullInterval: p.cfg.Schedule.FullInterval},
		CRLs:     &p.crls,
	})
	if err != nil {
		return nil, err
	}
	po := agent.PlanOptions{User: o.user, Reconcile: o.reconcile, Incremental: o.incremental}
	plan, err := a.Plan(ctx, po)
	if err != nil {
		if !o.dryRun {
			a.RecordFailure(po, err)
		}
		return nil, err
	}
	if o.dryRun {
		return plan, nil
	}
	return plan, a.Apply(ctx, plan, o.allowDeletes)
}

// lazySource connects to the directory on first use.
type lazySource struct {
	open func(context.Context) (*ldapsrc.Source, error)
	src  *ldapsrc.Source
}

func (l *lazySource) get(ctx context.Context) (*ldapsrc.Source, error) {
	if l.src == nil {
		s, err := l.open(ctx)
		if err != nil {
			return nil, err
		}
		l.src = s
	}
	return l.src, nil
}

func (l *lazySource) Read(ctx context.Context, req ldapsrc.ReadRequest, fn func(mapping.SourceUser) error) (ldapsrc.ReadResult, error) {
	s, err := l.get(ctx)
	if err != nil {
		return ldapsrc.ReadResult{}, err
	}
	return s.Read(ctx, req, fn)
}

func (l *lazySource) CRLs(ctx context.Context, opts ldapsrc.CRLOptions) ([]ldapsrc.CRLEntry, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return s.CRLs(ctx, opts)
}

func (l *lazySource) FindUser(ctx context.Context, id string) (ldapsrc.FoundUser, error) {
	s, err := l.get(ctx)
	if err != nil {
		return ldapsrc.FoundUser{}, err
	}
	return s.FindUser(ctx, id)
}

func (l *lazySource) Close() {
	if l.src != nil {
		_ = l.src.Close()
	}
}

// openStore opens the state file; a dry run opens it read-only, and with
// no file yet it plans against an empty state rather than create one.
func openStore(path string, dryRun bool) (agent.Store, func(), error) {
	st, err := state.Open(path, state.Options{ReadOnly: dryRun})
	switch {
	case dryRun && errors.Is(err, fs.ErrNotExist):
		return emptyStore{}, func() {}, nil
	case err != nil:
		return nil, nil, err
	}
	return st, func() { _ = st.Close() }, nil
}

// emptyStore is the state of a dry run before the first real pass.
type emptyStore struct{}

func (emptyStore) Get(string) (state.Record, bool, error) { return state.Record{}, false, nil }
func (emptyStore) ForEach(func(state.Record) error) error { return nil }
func (emptyStore) Count() (int, error)                    { return 0, nil }
func (emptyStore) Update([]state.Record, []string) error  { return errDryRunWrite }
func (emptyStore) Commit(state.Commit) error              { return errDryRunWrite }
func (emptyStore) Meta(string, any) (bool, error)         { return false, nil }
func (emptyStore) SetLastPass(state.PassSummary) error    { return errDryRunWrite }

var errDryRunWrite = errors.New("state: a dry run writes nothing")
