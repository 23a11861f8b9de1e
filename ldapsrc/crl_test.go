package ldapsrc_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// crlPKI is an issuing CA with three users' certificates: alice revoked
// in the base CRL, bob in the delta CRL, carol not at all.
type crlPKI struct {
	ca                  *pkitest.CA
	alice, bob, carol   *x509.Certificate
	base, delta         []byte
	now, aliceRevokedAt time.Time
}

func newCRLPKI(t *testing.T) crlPKI {
	t.Helper()
	ca, err := pkitest.NewRootCA("Issuing CA")
	if err != nil {
		t.Fatal(err)
	}
	p := crlPKI{ca: ca, now: time.Now().Truncate(time.Second)}
	for _, c := range []struct {
		cert **x509.Certificate
		name string
	}{{&p.alice, "alice"}, {&p.bob, "bob"}, {&p.carol, "carol"}} {
		if *c.cert, _, err = ca.Issue(pkitest.LeafOptions{CommonName: c.name, Email: c.name + "@example.test"}); err != nil {
			t.Fatal(err)
		}
	}
	p.aliceRevokedAt = p.now.Add(-30 * time.Minute).UTC()
	if p.base, err = ca.CRL(pkitest.CRLOptions{Number: 5, ThisUpdate: p.now.Add(-time.Hour), NextUpdate: p.now.Add(7 * 24 * time.Hour),
		Revoked: []pkitest.Revoked{{Serial: p.alice.SerialNumber, At: p.aliceRevokedAt, Reason: pkitest.ReasonKeyCompromise}}}); err != nil {
		t.Fatal(err)
	}
	if p.delta, err = ca.CRL(pkitest.CRLOptions{Number: 6, Delta: true, BaseNumber: 5, ThisUpdate: p.now.Add(-10 * time.Minute), NextUpdate: p.now.Add(24 * time.Hour),
		Revoked: []pkitest.Revoked{{Serial: p.bob.SerialNumber, At: p.now.Add(-15 * time.Minute), Reason: pkitest.ReasonCessationOfOperation}}}); err != nil {
		t.Fatal(err)
	}
	return p
}

// verdicts evaluates each certificate alone against the CRLs read and
// returns "name:accepted" or "name:code", and the set's problems.
func (p crlPKI) verdicts(t *testing.T, entries []ldapsrc.CRLEntry, certs map[string][]byte) (map[string]string, []mapping.CRLProblem) {
	t.Helper()
	set, problems := mapping.NewRevocationSet(ldapsrc.MappingCRLs(entries), []*x509.Certificate{p.ca.Cert}, p.now)
	policy := mapping.Policy{IssuingCAs: []*x509.Certificate{p.ca.Cert}, CheckRevocation: true, Revocation: set,
		RevocationUnavailable: mapping.RevocationReject}
	out := map[string]string{}
	for name, der := range certs {
		ev := mapping.Evaluate([]mapping.RawValue{{Attribute: mapping.AttrUserCertificate, Data: der}}, policy, p.now)
		switch {
		case len(ev.Accepted) == 1 && len(ev.Rejected) == 0:
			out[name] = "accepted"
		case len(ev.Rejected) == 1 && len(ev.Accepted) == 0:
			out[name] = ev.Rejected[0].Code + ": " + ev.Rejected[0].Reason
		default:
			t.Fatalf("%s: %+v", name, ev)
		}
	}
	return out, problems
}

// checkRevocationVerdicts: alice revoked by the base CRL, bob by the
// delta, carol accepted.
func (p crlPKI) checkRevocationVerdicts(t *testing.T, got map[string]string) {
	t.Helper()
	want := map[string]string{
		"alice": "revoked: revoked on " + p.aliceRevokedAt.Format(time.RFC3339) + " (keyCompromise) by CN=Issuing CA,O=certsync test, CRL 5",
		"bob": "revoked: revoked on " + p.now.Add(-15*time.Minute).UTC().Format(time.RFC3339) +
			" (cessationOfOperation) by CN=Issuing CA,O=certsync test, delta CRL 6",
		"carol": "accepted",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestCRLsSlapd(t *testing.T) {
	const crlSuffix = "dc=crl,dc=test"
	const cdp = "cn=CDP,cn=Public Key Services,cn=Services,cn=Configuration," + crlSuffix
	p := newCRLPKI(t)
	var seed strings.Builder
	for _, dn := range []string{
		"cn=Configuration," + crlSuffix,
		"cn=Services,cn=Configuration," + crlSuffix,
		"cn=Public Key Services,cn=Services,cn=Configuration," + crlSuffix,
		cdp,
		"cn=ca1," + cdp,
	} {
		cn, _, _ := strings.Cut(strings.TrimPrefix(dn, "cn="), ",")
		fmt.Fprintf(&seed, "dn: %s\nobjectClass: applicationProcess\ncn: %s\n\n", dn, cn)
	}
	// OpenLDAP insists on the ;binary option for CRL attributes.
	fmt.Fprintf(&seed, "dn: cn=Issuing CA,cn=ca1,%s\nobjectClass: cRLDistributionPoint\ncn: Issuing CA\n"+
		"certificateRevocationList;binary:: %s\ndeltaRevocationList;binary:: %s\n\n", cdp, b64(p.base), b64(p.delta))
	fmt.Fprintf(&seed, "dn: cn=Unpublished CA,cn=ca1,%s\nobjectClass: cRLDistributionPoint\ncn: Unpublished CA\n\n", cdp)
	srv := ldaptest.StartSlapd(t, ldaptest.SlapdOptions{Suffix: crlSuffix, SeedLDIF: []byte(seed.String())})
	src := openCRLSource(t, ldapsrc.Config{
		URL: srv.URL, BaseDN: crlSuffix, AnchorAttribute: "entryUUID",
		Bind: ldapsrc.Bind{Username: srv.AdminDN, Password: srv.AdminPassword},
		TLS:  ldapsrc.TLS{RootCAs: srv.RootCAs},
	})

	tests := []struct {
		name    string
		base    string
		max     int
		wantErr []string // substrings of the error, in order
		isErr   error
		want    []ldapsrc.CRLEntry
	}{
		{
			name: "explicit base",
			base: cdp,
			want: []ldapsrc.CRLEntry{
				{DN: "cn=Issuing CA,cn=ca1," + cdp, CA: "Issuing CA", Base: [][]byte{p.base}, Delta: [][]byte{p.delta}},
				{DN: "cn=Unpublished CA,cn=ca1," + cdp, CA: "Unpublished CA"},
			},
		},
		{
			name:    "derived base: OpenLDAP has no configuration partition",
			wantErr: []string{"ldapsrc: the rootDSE of " + srv.URL + " has no configurationNamingContext", "set the CRL base explicitly"},
		},
		{
			name:    "CRL over the size cap",
			base:    cdp,
			max:     len(p.base) - 1,
			wantErr: []string{"a CRL of cn=Issuing CA,cn=ca1," + cdp + fmt.Sprintf(" is %d bytes, larger than the %d bytes certsync reads", len(p.base), len(p.base)-1)},
		},
		{
			name:    "missing base",
			base:    "cn=CDP,cn=nowhere," + crlSuffix,
			wantErr: []string{"ldapsrc: read CRLs under cn=CDP,cn=nowhere," + crlSuffix + " from " + srv.URL + ": CRL container not found"},
			isErr:   ldapsrc.ErrNoCRLContainer,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := src.CRLs(context.Background(), ldapsrc.CRLOptions{Base: tt.base, MaxBytes: tt.max})
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, entries %d", len(got))
				}
				assertErrorParts(t, err, tt.wantErr)
				if tt.isErr != nil && !errors.Is(err, tt.isErr) {
					t.Errorf("error %v is not %v", err, tt.isErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkCRLEntries(t, got, tt.want)
			verdicts, problems := p.verdicts(t, got, map[string][]byte{"alice": p.alice.Raw, "bob": p.bob.Raw, "carol": p.carol.Raw})
			p.checkRevocationVerdicts(t, verdicts)
			if len(problems) != 0 {
				t.Errorf("problems: %v", problems)
			}
		})
	}

	t.Run("closed source", func(t *testing.T) {
		s := openCRLSource(t, ldapsrc.Config{
			URL: srv.URL, BaseDN: crlSuffix, AnchorAttribute: "entryUUID",
			Bind: ldapsrc.Bind{Username: srv.AdminDN, Password: srv.AdminPassword},
			TLS:  ldapsrc.TLS{RootCAs: srv.RootCAs},
		})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := s.CRLs(context.Background(), ldapsrc.CRLOptions{Base: cdp})
		assertErrorParts(t, err, []string{"source is closed"})
	})
}

func openCRLSource(t *testing.T, cfg ldapsrc.Config) *ldapsrc.Source {
	t.Helper()
	cfg.DialTimeout, cfg.OpTimeout = 10*time.Second, 30*time.Second
	s, err := ldapsrc.Open(context.Background(), cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open %s: %v", cfg.URL, err)
	}
	t.Cleanup(func() { _ = s.Close() }) // a test may have closed it already
	return s
}

func assertErrorParts(t *testing.T, err error, parts []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one with %q", parts)
	}
	msg := err.Error()
	for _, part := range parts {
		i := strings.Index(msg, part)
		if i < 0 {
			t.Fatalf("error %q lacks %q", err, part)
		}
		msg = msg[i+len(part):]
	}
}

// checkCRLEntries compares entries regardless of their order, DNs
// case-insensitively (servers may change the case of attribute types).
func checkCRLEntries(t *testing.T, got, want []ldapsrc.CRLEntry) {
	t.Helper()
	byDN := func(a, b ldapsrc.CRLEntry) int { return strings.Compare(strings.ToLower(a.DN), strings.ToLower(b.DN)) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, byDN)
	slices.SortFunc(want, byDN)
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !strings.EqualFold(g.DN, w.DN) || g.CA != w.CA ||
			!slices.EqualFunc(g.Base, w.Base, bytes.Equal) || !slices.EqualFunc(g.Delta, w.Delta, bytes.Equal) {
			t.Errorf("entry %d = {%s %q %d base %d delta}, want {%s %q %d base %d delta} (or values differ)",
				i, g.DN, g.CA, len(g.Base), len(g.Delta), w.DN, w.CA, len(w.Base), len(w.Delta))
		}
	}
}
