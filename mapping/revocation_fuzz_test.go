package mapping

import (
	"crypto/x509"
	"slices"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

// FuzzRevocationSet feeds arbitrary bytes as a base and a delta CRL value,
// as read from the directory. The CAs come in as an input too (see
// FuzzEvaluate): each fuzzing worker would otherwise make its own PKI, and
// no seed CRL would verify in it.
func FuzzRevocationSet(f *testing.F) {
	fx := newFixture(f)
	now := fx.now
	cas := append(append([]byte{}, fx.root.Cert.Raw...), fx.inter.Cert.Raw...)
	mk := func(ca string, o pkitest.CRLOptions) []byte { return fx.crl(ca, o).DER }
	base := mk("inter", pkitest.CRLOptions{Number: 5, Revoked: []pkitest.Revoked{
		fx.revoke("alice", pkitest.ReasonCertificateHold, now.Add(-time.Hour)),
		fx.revoke("bob", pkitest.ReasonKeyCompromise, now.Add(-time.Hour))}})
	delta := mk("inter", pkitest.CRLOptions{Number: 6, Delta: true, BaseNumber: 5, Revoked: []pkitest.Revoked{
		fx.revoke("alice", pkitest.ReasonRemoveFromCRL, now)}})
	seeds := [][2][]byte{
		{base, delta},
		{base, mk("root", pkitest.CRLOptions{})},
		{mk("inter", pkitest.CRLOptions{SignWith: fx.foreign}), delta},
		{mk("inter", pkitest.CRLOptions{NextUpdate: now.Add(-time.Minute), ThisUpdate: now.Add(-time.Hour)}), nil},
		{mk("foreign", pkitest.CRLOptions{}), {0}},
		{[]byte("garbage bytes"), base[:len(base)/2]},
		{delta, nil},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], cas)
	}
	f.Fuzz(func(t *testing.T, a, b, cas []byte) {
		issuing, _ := x509.ParseCertificates(cas)
		crls := []CRL{{Source: "a", DER: a}, {Source: "b", DER: b}}
		set, problems := NewRevocationSet(crls, issuing, now)
		if !slices.Equal(set.Problems(), problems) {
			t.Fatalf("Problems() %v differs from the returned %v", set.Problems(), problems)
		}
		for _, c := range crls {
			if len(c.DER) <= 1 {
				continue
			}
			if _, err := x509.ParseRevocationList(c.DER); err != nil &&
				!slices.ContainsFunc(problems, func(p CRLProblem) bool { return p.Source == c.Source && p.CA == "" }) {
				t.Errorf("unparsable CRL %s not reported: %v", c.Source, problems)
			}
		}
		if next := set.NextUpdate(); !next.IsZero() && next.Before(now) {
			t.Errorf("NextUpdate %v before now %v: a stale CRL was used", next, now)
		}
		if r := set.RefreshAt(); !r.IsZero() && (set.NextUpdate().IsZero() || r.After(set.NextUpdate())) {
			t.Errorf("RefreshAt %v after NextUpdate %v", r, set.NextUpdate())
		}
		for _, ca := range issuing {
			st := set.status(ca, ca)
			if st.unavailable == "" {
				continue
			}
			if !slices.ContainsFunc(problems, func(p CRLProblem) bool { return p.Unavailable && p.CA == ca.Subject.String() }) {
				t.Errorf("CA %s without status (%s) has no Unavailable problem: %v", ca.Subject, st.unavailable, problems)
			}
		}
		for _, p := range problems {
			if p.Reason == "" {
				t.Errorf("problem without reason: %+v", p)
			}
		}
	})
}
