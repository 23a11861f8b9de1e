package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
)

// TargetAltSecurityIdentities is the attribute the AD target writes:
// the user's own altSecurityIdentities, in the directory it was read from.
const TargetAltSecurityIdentities = "ad.altSecurityIdentities"

// ADDirectory is what the AD target needs of a directory it writes to
// (ldapsrc.Source).
type ADDirectory interface {
	// ActiveDirectoryDomain is the domain's DN; it fails with
	// ldapsrc.ErrNotActiveDirectory on a server without the attribute.
	ActiveDirectoryDomain(ctx context.Context) (string, error)
	AltSecurityIdentities(ctx context.Context, guid string) (ldapsrc.AltSecurityEntry, error)
	AltSecurityHolders(ctx context.Context, base, value string) ([]string, error)
	ModifyAltSecurityIdentities(ctx context.Context, dn string, add, remove []string) error
}

var _ ADDirectory = (*ldapsrc.Source)(nil)

// ADSource is one directory whose users get strong certificate mappings:
// its name (as its users' records say), its settings, and how to open a
// connection for the target's reads and writes.
type ADSource struct {
	Name     string
	Settings ldapsrc.AltSecuritySettings
	Open     func(ctx context.Context) (ADDirectory, error)
}

// ADTarget writes strong certificate mappings (KB5014754:
// "X509:<I>issuer<SR>serial", "X509:<SKI>…", "X509:<SHA1-PUKEY>…") to the
// altSecurityIdentities of each user's own entry, in the directory the
// user was read from, with single-value adds and deletes. Domain
// controllers map logon certificates with them (smart cards, 802.1X), and
// an Entra Connect sync rule can carry them to certificateUserIds for
// users Graph will not let certsync write.
type ADTarget struct {
	sources map[string]*adSource // by source name: only those with the target on
}

var _ Target = (*ADTarget)(nil)

// adSource is one directory's part of the target; its connection is opened
// on first use and kept (ldapsrc reconnects when the server drops it).
type adSource struct {
	settings ldapsrc.AltSecuritySettings
	kinds    []mapping.BindingKind
	open     func(ctx context.Context) (ADDirectory, error)

	mu     sync.Mutex
	dir    ADDirectory // guarded by mu
	domain string      // guarded by mu
}

// NewADTarget builds the target over the directories that enabled it, or
// whose mappings are to be withdrawn (AltSecuritySettings.Withdraw: the
// target wants nothing there, so what certsync wrote goes).
func NewADTarget(sources []ADSource) (*ADTarget, error) {
	t := &ADTarget{sources: map[string]*adSource{}}
	for _, s := range sources {
		if !s.Settings.Enabled && !s.Settings.Withdraw {
			continue
		}
		if s.Open == nil {
			return nil, fmt.Errorf("agent: ad target: directory %s: no way to open it", s.Name)
		}
		s.Settings.Defaults()
		as := &adSource{settings: s.Settings, open: s.Open}
		for _, m := range s.Settings.Mappings {
			k, err := mapping.ParseBindingKind(m)
			if err != nil {
				return nil, fmt.Errorf("agent: ad target: directory %s: %w", s.Name, err)
			}
			as.kinds = append(as.kinds, k)
		}
		t.sources[s.Name] = as
	}
	if len(t.sources) == 0 {
		return nil, errors.New("agent: ad target: no directory enables altSecurityIdentities")
	}
	return t, nil
}

func (t *ADTarget) Name() string { return "ad" }

// Attributes: the limit is each directory's maxValues (LimitFor); the
// largest stands here. No value may sit on two users: the KDC could not
// tell whose the certificate is, and Entra Connect fails such users.
func (t *ADTarget) Attributes() []cloudsink.Target {
	limit := 0
	for _, s := range t.sources {
		limit = max(limit, s.settings.MaxValues)
	}
	return []cloudsink.Target{{Name: TargetAltSecurityIdentities, Limit: limit, Unique: true}}
}

// LimitFor is the maxValues of the user's directory.
func (t *ADTarget) LimitFor(_, source string) int {
	if s := t.sources[source]; s != nil {
		return s.settings.MaxValues
	}
	return 0
}

// Match: a user's own entry is its account, found by objectGUID.
func (t *ADTarget) Match() Match {
	return Match{SourceAttribute: "objectGUID", CloudProperty: "objectGUID"}
}

func (t *ADTarget) Account() string     { return "directory entry" }
func (t *ADTarget) AdoptExisting() bool { return false }

// Want is the configured mappings of every certificate the target uses
// (Verdicts), newest first.
func (t *ADTarget) Want(attr, source string, ev mapping.Evaluation) []string {
	var certs []mapping.Certificate
	for _, v := range t.judge(attr, source, ev, false) {
		if v.used {
			certs = append(certs, v.cert)
		}
	}
	if len(certs) == 0 {
		return nil
	}
	return mapping.CertificateUserIDs(certs, t.sources[source].kinds)
}

// Verdicts is the target's own judgement of each certificate that passed
// the policy's checks, but perhaps its extended key usages, which speak
// for the other targets: mapped when fit for logon (mapping.LogonPurpose),
// whatever policy.extendedKeyUsages says; not mapped when unfit, or when
// its SID extension binds it to the user already and mapSIDCertificates
// is off (Evaluate rejected those naming another account).
func (t *ADTarget) Verdicts(attr, source string, ev mapping.Evaluation) []CertVerdict {
	judged := t.judge(attr, source, ev, true)
	if len(judged) == 0 {
		return nil
	}
	out := make([]CertVerdict, len(judged))
	for i, j := range judged {
		out[i] = j.CertVerdict
	}
	return out
}

type adVerdict struct {
	CertVerdict
	cert mapping.Certificate
	used bool
}

// judge decides for each certificate whether the target uses it; explain
// adds what people read (Want, called for every user of every pass, does
// without).
func (t *ADTarget) judge(attr, source string, ev mapping.Evaluation, explain bool) []adVerdict {
	s := t.sources[source]
	if attr != TargetAltSecurityIdentities || s == nil || s.settings.Withdraw || len(ev.Accepted)+len(ev.OtherPurpose) == 0 {
		return nil
	}
	certs := ev.Accepted
	if len(ev.OtherPurpose) > 0 {
		certs = append(slices.Clone(ev.Accepted), ev.OtherPurpose...)
		mapping.SortNewestFirst(certs)
	}
	out := make([]adVerdict, 0, len(certs))
	for _, c := range certs {
		v := adVerdict{cert: c}
		_, hasSID, sidErr := mapping.CertificateSID(c.Cert)
		fit := mapping.FitForLogon(c.Cert)
		v.used = fit && !(hasSID && sidErr == nil && !s.settings.MapSIDCertificates)
		if explain {
			v.CertVerdict = newCertVerdict(c)
			v.PolicyRejected = !slices.ContainsFunc(ev.Accepted, func(a mapping.Certificate) bool { return a.SHA256 == c.SHA256 })
			purpose, _ := mapping.LogonPurpose(c.Cert)
			switch {
			case !fit:
				v.Verdict, v.Reason = VerdictRefused, purpose
			case !v.used:
				v.Verdict, v.Reason = VerdictNotNeeded, "its SID extension binds it to this account: domain controllers map it strongly without a value (mapSIDCertificates: false)"
			default:
				v.Verdict, v.Reason = VerdictUsed, "fit for logon ("+purpose+")"
				if v.PolicyRejected {
					v.Reason += "; policy.extendedKeyUsages, which the other targets follow, does not admit it"
				}
			}
		}
		out = append(out, v)
	}
	return out
}

// Describe flags what an admin must know about a value: certsync's own
// are strong; others may be weak (the KDC refuses them under full
// enforcement) or not certificate mappings at all.
func (t *ADTarget) Describe(_, v string) string {
	switch MappingStrength(v) {
	case MappingWeak:
		return v + "  (WEAK mapping: domain controllers refuse it since KB5014754 full enforcement)"
	case MappingKerberos:
		return v + "  (Kerberos principal mapping)"
	case MappingOther:
		return v + "  (not a certificate mapping certsync knows)"
	}
	return v
}

// RemovalWarning is shown with every plan that removes a mapping.
func (t *ADTarget) RemovalWarning(string) string {
	return "a removed mapping stops the smart card (or other logon certificate) it maps from logging on at its next logon"
}

// Mapping strengths (MappingStrength).
const (
	MappingStrong   = "strong"
	MappingWeak     = "weak"
	MappingKerberos = "kerberos"
	MappingOther    = "other"
)

// MappingStrength classifies an altSecurityIdentities value as KB5014754
// does: X509IssuerSerialNumber, X509SKI, X509SHA1PublicKey (and the
// Issuer/SID mapping of September 2025) are strong; X509IssuerSubject,
// X509SubjectOnly and X509RFC822 are weak.
func MappingStrength(v string) string {
	switch {
	case strings.HasPrefix(v, "Kerberos:"):
		return MappingKerberos
	case !strings.HasPrefix(v, "X509:"):
		return MappingOther
	}
	rest := strings.TrimPrefix(v, "X509:")
	switch {
	case strings.HasPrefix(rest, "<SKI>"), strings.HasPrefix(rest, "<SHA1-PUKEY>"):
		return MappingStrong
	case strings.HasPrefix(rest, "<I>") && (strings.Contains(rest, "<SR>") || strings.Contains(rest, "<SID>")):
		return MappingStrong
	case strings.HasPrefix(rest, "<I>"), strings.HasPrefix(rest, "<S>"), strings.HasPrefix(rest, "<RFC822>"):
		return MappingWeak
	}
	return MappingOther
}

func (t *ADTarget) Fingerprint() string {
	return settingsFingerprint(t.Name(), t.settings())
}

// settings is each directory's settings, by name.
func (t *ADTarget) settings() map[string]ldapsrc.AltSecuritySettings {
	out := make(map[string]ldapsrc.AltSecuritySettings, len(t.sources))
	for name, s := range t.sources {
		out[name] = s.settings
	}
	return out
}

func (t *ADTarget) SourceAttributes() (identity, certificates []string) {
	return []string{"objectGUID", attrObjectSID}, nil
}

// directory opens source's connection on first use and checks it is
// Active Directory.
func (t *ADTarget) directory(ctx context.Context, source string) (ADDirectory, string, error) {
	s := t.sources[source]
	if s == nil {
		return nil, "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir != nil {
		return s.dir, s.domain, nil
	}
	dir, err := s.open(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("directory %s: %w", source, err)
	}
	domain, err := dir.ActiveDirectoryDomain(ctx)
	if err != nil {
		if c, ok := dir.(interface{ Close() error }); ok {
			_ = c.Close()
		}
		return nil, "", fmt.Errorf("directory %s: %w", source, err)
	}
	s.dir, s.domain = dir, domain
	return dir, domain, nil
}

// taken refuses values of wanted that another entry of the domain holds,
// naming it: a mapping may sit on one account only (the KDC could not tell
// whose the certificate is, and Entra Connect fails both users).
func (t *ADTarget) taken(ctx context.Context, source string, e ldapsrc.AltSecurityEntry, wanted []string) error {
	dir, domain, err := t.directory(ctx, source)
	if err != nil {
		return err
	}
	for _, v := range wanted {
		if slices.Contains(e.Values, v) {
			continue
		}
		holders, err := dir.AltSecurityHolders(ctx, domain, v)
		if err != nil {
			return err
		}
		holders = slices.DeleteFunc(holders, func(dn string) bool { return strings.EqualFold(dn, e.DN) })
		if len(holders) > 0 {
			return fmt.Errorf("%w: %s: %s is already held by %s; a mapping may sit on one account only: nothing is written to this entry until one of them lets it go",
				ldapsrc.ErrWriteRefused, e.DN, v, strings.Join(holders, "; "))
		}
	}
	return nil
}

// Lookup reads each user's entry by objectGUID (the anchor, or the id
// certsync wrote to, which is the same) with its current values. Users of
// a directory that does not enable the target get an empty account:
// nothing is wanted or written there.
func (t *ADTarget) Lookup(ctx context.Context, lookups []cloudsink.Lookup) (map[string]cloudsink.LookupResult, error) {
	out := make(map[string]cloudsink.LookupResult, len(lookups))
	for _, l := range lookups {
		if t.sources[l.Source] == nil {
			out[l.Key] = cloudsink.LookupResult{Account: &cloudsink.Account{ID: l.Value}}
			continue
		}
		dir, _, err := t.directory(ctx, l.Source)
		if err != nil {
			out[l.Key] = cloudsink.LookupResult{Err: err}
			continue
		}
		e, err := dir.AltSecurityIdentities(ctx, l.Value)
		if err == nil {
			err = t.taken(ctx, l.Source, e, l.Wanted)
		}
		switch {
		case errors.Is(err, ldapsrc.ErrUserNotFound):
			out[l.Key] = cloudsink.LookupResult{Err: fmt.Errorf("%w: %w", cloudsink.ErrNotFound, err)}
		case err != nil:
			out[l.Key] = cloudsink.LookupResult{Err: err}
		default:
			out[l.Key] = cloudsink.LookupResult{Account: &cloudsink.Account{ID: l.Value, UserPrincipalName: e.DN,
				Values: map[string][]string{TargetAltSecurityIdentities: e.Values}}}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Apply removes and adds single values, one modify per user, which the
// directory applies whole or not at all. A value another entry of the
// domain holds is refused for this user, naming the holder (Lookup
// refuses it first, so the dry run shows it).
func (t *ADTarget) Apply(ctx context.Context, updates []cloudsink.Update) []cloudsink.Result {
	out := make([]cloudsink.Result, len(updates))
	for i, u := range updates {
		out[i] = cloudsink.Result{Key: u.Key, Target: u.Target, Err: t.apply(ctx, u)}
	}
	return out
}

func (t *ADTarget) apply(ctx context.Context, u cloudsink.Update) error {
	dir, _, err := t.directory(ctx, u.Source)
	if err != nil {
		return err
	}
	if dir == nil {
		return fmt.Errorf("directory %s does not enable altSecurityIdentities", u.Source)
	}
	e, err := dir.AltSecurityIdentities(ctx, u.AccountID)
	if err != nil {
		return err
	}
	// Checked again: another entry may have taken a value since Lookup.
	if err := t.taken(ctx, u.Source, e, u.Add); err != nil {
		return err
	}
	return dir.ModifyAltSecurityIdentities(ctx, e.DN, u.Add, u.Remove)
}
