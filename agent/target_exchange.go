package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/mapping"
)

// Mailbox attributes Exchange Online holds certificates in, as
// cloud.exchange.mapping names them.
const (
	MailboxUserCertificate      = "UserCertificate"
	MailboxUserSMimeCertificate = "UserSMimeCertificate"
)

// mailboxAttributes maps the names of cloud.exchange.mapping to the
// sink's attribute names.
func mailboxAttributes() map[string]string {
	return map[string]string{
		MailboxUserCertificate:      cloudsink.TargetUserCertificate,
		MailboxUserSMimeCertificate: cloudsink.TargetUserSMimeCertificate,
	}
}

// ExchangeSettings is the Exchange Online target's configuration
// (cloud.exchange).
type ExchangeSettings struct {
	Enabled bool `yaml:"enabled"`
	// Endpoint overrides the environment's Exchange Online root (tests and
	// emulators).
	Endpoint string `yaml:"endpoint"`
	// Match says how a directory user's mailbox is found.
	Match Match `yaml:"match"`
	// Mapping: directory attribute → the mailbox attribute it feeds.
	Mapping       map[string]string `yaml:"mapping"`
	AdoptExisting bool              `yaml:"adoptExisting"`
	// SmimeIssuingCAs keeps Exchange's trusted-CA collection
	// (Set-SmimeConfig -SMIMECertificateIssuingCA, what Outlook on the
	// web validates S/MIME certificates with) equal to the certificates
	// of policy.issuingCAFile. Opt-in: it replaces the whole collection.
	SmimeIssuingCAs bool `yaml:"smimeIssuingCAs" json:",omitempty"`
}

// Defaults fills in what the file left out.
func (s *ExchangeSettings) Defaults() {
	if s.Match.SourceAttribute == "" {
		s.Match.SourceAttribute = "mail"
	}
	if s.Match.CloudProperty == "" {
		s.Match.CloudProperty = "mail"
	}
	if len(s.Mapping) == 0 {
		s.Mapping = map[string]string{
			mapping.AttrUserCertificate:      MailboxUserCertificate,
			mapping.AttrUserSMIMECertificate: MailboxUserSMimeCertificate,
		}
	}
}

// Validate checks the settings; key names the section in errors
// ("cloud.exchange").
func (s ExchangeSettings) Validate(key string) error {
	if s.SmimeIssuingCAs && !s.Enabled {
		return fmt.Errorf("%s.smimeIssuingCAs: needs %s.enabled: true (the collection is written through the Exchange target)", key, key)
	}
	if s.Endpoint != "" {
		if err := cloudsink.CheckEndpoint(s.Endpoint); err != nil {
			return fmt.Errorf("%s.endpoint: %w", key, err)
		}
	}
	if err := s.Match.validate(key+".match", cloudsink.ExchangeMatchProperties()); err != nil {
		return err
	}
	boxes := slices.Sorted(maps.Keys(mailboxAttributes()))
	for _, attr := range slices.Sorted(maps.Keys(s.Mapping)) {
		if attr == "" || strings.ContainsAny(attr, "; ,()*=") {
			return fmt.Errorf("%s.mapping: %q is not an LDAP attribute name", key, attr)
		}
		if !slices.Contains(boxes, s.Mapping[attr]) {
			return fmt.Errorf("%s.mapping.%s: %q is not one of %s", key, attr, s.Mapping[attr], strings.Join(boxes, ", "))
		}
	}
	return nil
}

// ExchangeTarget publishes the certificates themselves to Exchange Online
// mailboxes' UserCertificate and UserSMimeCertificate, where Outlook
// finds them in the global address list.
type ExchangeTarget struct {
	settings ExchangeSettings
	// feeds lists, per sink attribute, the directory attributes feeding it.
	feeds map[string][]string
	sink  *cloudsink.Exchange // non-nil

	mu sync.Mutex // guards confirmed
	// confirmed is the trusted-CA store last found in (or written to)
	// Exchange: later passes wanting the same store do not ask again,
	// except when reconciling.
	confirmed []byte
}

var _ Target = (*ExchangeTarget)(nil)

// NewExchangeTarget builds the target over its sink; the settings must
// have passed Validate.
func NewExchangeTarget(s ExchangeSettings, sink *cloudsink.Exchange) (*ExchangeTarget, error) {
	if sink == nil {
		return nil, errors.New("agent: exchange target: no sink")
	}
	s.Defaults()
	t := &ExchangeTarget{settings: s, feeds: map[string][]string{}, sink: sink}
	boxes := mailboxAttributes()
	for _, ldapAttr := range slices.Sorted(maps.Keys(s.Mapping)) {
		attr, ok := boxes[s.Mapping[ldapAttr]]
		if !ok {
			return nil, fmt.Errorf("agent: exchange target: mapping %s: unknown mailbox attribute %q", ldapAttr, s.Mapping[ldapAttr])
		}
		t.feeds[attr] = append(t.feeds[attr], ldapAttr)
	}
	return t, nil
}

func (t *ExchangeTarget) Name() string                   { return "exchange" }
func (t *ExchangeTarget) Attributes() []cloudsink.Target { return t.sink.Targets() }
func (t *ExchangeTarget) Match() Match                   { return t.settings.Match }
func (t *ExchangeTarget) Account() string                { return "mailbox" }
func (t *ExchangeTarget) AdoptExisting() bool            { return t.settings.AdoptExisting }

// Want is the directory values feeding attr that passed whole (every
// end-entity certificate in them accepted), newest first, as the sink's
// values: the base64 of each value exactly as read. A PKCS#7 blob goes as
// the blob, chain and all, byte for byte (Outlook reads it back from the
// GAL, as Entra Connect copies it); a DER certificate as its DER. A value
// found twice goes once. The limit of 15 is applied by the plan, which
// reports what it leaves out.
func (t *ExchangeTarget) Want(attr, _ string, ev mapping.Evaluation) []string {
	sources := t.feeds[attr]
	fedBy := func(a string) bool {
		return slices.ContainsFunc(sources, func(s string) bool { return strings.EqualFold(s, a) })
	}
	var out []string
	seen := map[string]bool{}
	for _, v := range ev.Values {
		if fedBy(v.Attribute) && !seen[v.SHA256] {
			seen[v.SHA256] = true
			out = append(out, base64.StdEncoding.EncodeToString(v.Data))
		}
	}
	return out
}

// Describe shows a certificate by subject, serial and hash, and a PKCS#7
// blob by its end-entity certificates and its own hash.
func (t *ExchangeTarget) Describe(_, v string) string {
	data, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return short(v) + " (not base64)"
	}
	sum := sha256.Sum256(data)
	if c, err := x509.ParseCertificate(data); err == nil {
		return describeCert(c) + "  sha256 " + short(hex.EncodeToString(sum[:]))
	}
	certs, err := mapping.Decode(data)
	if err != nil {
		return "(not a certificate)  sha256 " + short(hex.EncodeToString(sum[:]))
	}
	parts := make([]string, len(certs))
	for i, c := range certs {
		parts[i] = describeCert(c)
	}
	return fmt.Sprintf("PKCS#7 [%s]  sha256 %s", strings.Join(parts, "; "), short(hex.EncodeToString(sum[:])))
}

func describeCert(c *x509.Certificate) string {
	return fmt.Sprintf("%s  serial %s", c.Subject, strings.ToUpper(c.SerialNumber.Text(16)))
}

func (t *ExchangeTarget) Fingerprint() string { return settingsFingerprint(t.Name(), t.settings) }

func (t *ExchangeTarget) SourceAttributes() (identity, certificates []string) {
	return []string{t.settings.Match.SourceAttribute}, slices.Sorted(maps.Keys(t.settings.Mapping))
}

func (t *ExchangeTarget) Lookup(ctx context.Context, l []cloudsink.Lookup) (map[string]cloudsink.LookupResult, error) {
	return t.sink.Lookup(ctx, l)
}

// Prefetch lets a large pass list every recipient in pages instead of
// asking for each (cloudsink.Exchange.Prefetch).
func (t *ExchangeTarget) Prefetch(ctx context.Context, l []cloudsink.Lookup) (func(), error) {
	return t.sink.Prefetch(ctx, l)
}

func (t *ExchangeTarget) Apply(ctx context.Context, u []cloudsink.Update) []cloudsink.Result {
	return t.sink.Apply(ctx, u)
}

// smimeIssuingCA is the tenant setting PlanTenant keeps.
const smimeIssuingCA = "SMIMECertificateIssuingCA"

var _ tenantTarget = (*ExchangeTarget)(nil)

// PlanTenant keeps Exchange's trusted-CA collection equal to the trusted
// CAs (cas, from policy.issuingCAFile), when smimeIssuingCAs is on. It
// compares certificates, not bytes: a store an administrator exported
// from Windows (with properties) holding the same CAs is in line. A store
// Exchange would refuse (an expired CA, too large) is a Problem, and
// nothing is sent.
func (t *ExchangeTarget) PlanTenant(ctx context.Context, cas []*x509.Certificate, now time.Time, recheck bool) *TenantChange {
	if !t.settings.SmimeIssuingCAs {
		return nil
	}
	c := &TenantChange{Target: t.Name(), Setting: smimeIssuingCA}
	sst, err := cloudsink.SmimeStore(cas, now)
	if err != nil {
		c.Problem = err.Error()
		return c
	}
	t.mu.Lock()
	known := bytes.Equal(t.confirmed, sst)
	t.mu.Unlock()
	if known && !recheck {
		return nil
	}
	held, err := t.sink.SmimeIssuingCAs(ctx)
	if err != nil {
		c.Problem = "reading Exchange's trusted-CA collection (Get-SmimeConfig): " + err.Error()
		return c
	}
	want, err := cloudsink.ParseSST(sst)
	if err != nil {
		c.Problem = err.Error() // SmimeStore writes what ParseSST reads
		return c
	}
	if cloudsink.SameCertificates(held, want) {
		t.confirm(sst)
		return nil
	}
	c.Add, c.Remove = describeDERs(missing(want, held)), describeDERs(missing(held, want))
	c.apply = func(ctx context.Context) error {
		if err := t.sink.SetSmimeIssuingCAs(ctx, sst); err != nil {
			return err
		}
		t.confirm(sst)
		return nil
	}
	return c
}

func (t *ExchangeTarget) confirm(sst []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.confirmed = sst
}

// missing lists the certificates of a that b does not hold.
func missing(a, b [][]byte) [][]byte {
	var out [][]byte
	for _, c := range a {
		if !slices.ContainsFunc(b, func(d []byte) bool { return bytes.Equal(c, d) }) {
			out = append(out, c)
		}
	}
	return out
}

// describeDERs shows certificates for people.
func describeDERs(ders [][]byte) []string {
	out := make([]string, 0, len(ders))
	for _, d := range ders {
		sum := sha256.Sum256(d)
		if c, err := x509.ParseCertificate(d); err == nil {
			out = append(out, describeCert(c)+"  sha256 "+short(hex.EncodeToString(sum[:])))
		} else {
			out = append(out, "(not a certificate)  sha256 "+short(hex.EncodeToString(sum[:])))
		}
	}
	return out
}

// short cuts a long value (a hash, a base64 certificate) for people.
func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
