package mapping

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

// crl makes a CRL of the named fixture CA ("root", "inter", "foreign").
func (fx *fixture) crl(ca string, o pkitest.CRLOptions) CRL {
	fx.t.Helper()
	c := map[string]*pkitest.CA{"root": fx.root, "inter": fx.inter, "foreign": fx.foreign}[ca]
	if c == nil {
		fx.t.Fatalf("fixture has no CA %q", ca)
	}
	der, err := c.CRL(o)
	if err != nil {
		fx.t.Fatal(err)
	}
	kind := "base"
	if o.Delta {
		kind = "delta"
	}
	return CRL{Source: ca + " " + kind, DER: der}
}

// revoke is a CRL entry for the named certificate.
func (fx *fixture) revoke(name string, reason int, at time.Time) pkitest.Revoked {
	return pkitest.Revoked{Serial: fx.cert(name).SerialNumber, Reason: reason, At: at}
}

func TestEvaluateRevocation(t *testing.T) {
	fx := newFixture(t)
	now := fx.now
	fresh := func(o pkitest.CRLOptions) pkitest.CRLOptions {
		o.ThisUpdate, o.NextUpdate = now.Add(-time.Hour), now.Add(24*time.Hour)
		return o
	}
	revokedAt := now.Add(-2 * time.Hour).UTC()
	at := utc(revokedAt)
	hold := func(n int64, names ...string) pkitest.CRLOptions {
		o := fresh(pkitest.CRLOptions{Number: n})
		for _, name := range names {
			o.Revoked = append(o.Revoked, fx.revoke(name, pkitest.ReasonCertificateHold, revokedAt))
		}
		return o
	}
	idp := func(der []byte) pkix.Extension {
		return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 28}, Critical: true, Value: der}
	}
	rootCRL := fx.crl("root", fresh(pkitest.CRLOptions{}))

	tests := []struct {
		name        string
		crls        []CRL
		noRootCRL   bool   // leave out the root's CRL, which every other row has
		nilSet      bool   // Policy.Revocation nil
		off         bool   // CheckRevocation false
		unavailable string // Policy.RevocationUnavailable
		values      []string
		// accepted: "name" or "name!warning substring"; rejected: "name:code".
		accepted, rejected []string
		reasons            map[string]string // rejected name -> exact reason
		// problems: "CA CN|substring|U" (U: Unavailable) in order.
		problems []string
	}{
		{
			name: "not revoked",
			crls: []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{Revoked: []pkitest.Revoked{
				fx.revoke("bob", pkitest.ReasonKeyCompromise, revokedAt)}}))},
			values:   []string{"alice", "rootLeaf"},
			accepted: []string{"alice", "rootLeaf"},
		},
		{
			name: "revoked, with reason and date",
			crls: []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{Number: 3, Revoked: []pkitest.Revoked{
				fx.revoke("alice", pkitest.ReasonKeyCompromise, revokedAt)}}))},
			values:   []string{"alice", "bob"},
			accepted: []string{"bob"},
			rejected: []string{"alice:revoked"},
			reasons:  map[string]string{"alice": "revoked on " + at + " (keyCompromise) by CN=Issuing,O=certsync test, CRL 3"},
		},
		{
			name: "revoked without a reason code",
			crls: []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{Revoked: []pkitest.Revoked{
				fx.revoke("alice", pkitest.ReasonUnspecified, revokedAt)}}))},
			values:   []string{"alice"},
			rejected: []string{"alice:revoked"},
			reasons:  map[string]string{"alice": "revoked on " + at + " (unspecified) by CN=Issuing,O=certsync test, CRL 1"},
		},
		{
			name: "revoked in the delta CRL",
			crls: []CRL{
				fx.crl("inter", hold(5)),
				fx.crl("inter", fresh(pkitest.CRLOptions{Number: 6, Delta: true, BaseNumber: 5, Revoked: []pkitest.Revoked{
					fx.revoke("alice", pkitest.ReasonSuperseded, revokedAt)}})),
			},
			values:   []string{"alice", "bob"},
			accepted: []string{"bob"},
			rejected: []string{"alice:revoked"},
			reasons:  map[string]string{"alice": "revoked on " + at + " (superseded) by CN=Issuing,O=certsync test, delta CRL 6"},
		},
		{
			name:     "on hold in the base CRL",
			crls:     []CRL{fx.crl("inter", hold(5, "alice"))},
			values:   []string{"alice"},
			rejected: []string{"alice:revoked"},
			reasons:  map[string]string{"alice": "revoked on " + at + " (certificateHold) by CN=Issuing,O=certsync test, CRL 5"},
		},
		{
			name: "delta removeFromCRL lifts the hold",
			crls: []CRL{
				fx.crl("inter", hold(5, "alice", "bob")),
				fx.crl("inter", fresh(pkitest.CRLOptions{Number: 6, Delta: true, BaseNumber: 5, Revoked: []pkitest.Revoked{
					fx.revoke("alice", pkitest.ReasonRemoveFromCRL, now.Add(-time.Minute))}})),
			},
			values:   []string{"alice", "bob"},
			accepted: []string{"alice"},
			rejected: []string{"bob:revoked"},
		},
		{
			name: "delta older than the base is superseded",
			crls: []CRL{
				fx.crl("inter", fresh(pkitest.CRLOptions{Number: 7})),
				fx.crl("inter", fresh(pkitest.CRLOptions{Number: 6, Delta: true, BaseNumber: 5, Revoked: []pkitest.Revoked{
					fx.revoke("alice", pkitest.ReasonKeyCompromise, revokedAt)}})),
			},
			values:   []string{"alice"},
			accepted: []string{"alice"},
		},
		{
			name: "newest base wins over an old stale one",
			crls: []CRL{
				fx.crl("inter", pkitest.CRLOptions{Number: 1, ThisUpdate: now.Add(-9 * 24 * time.Hour), NextUpdate: now.Add(-2 * 24 * time.Hour),
					Revoked: []pkitest.Revoked{fx.revoke("bob", pkitest.ReasonKeyCompromise, revokedAt)}}),
				fx.crl("inter", fresh(pkitest.CRLOptions{Number: 2, Revoked: []pkitest.Revoked{
					fx.revoke("alice", pkitest.ReasonKeyCompromise, revokedAt)}})),
			},
			values:   []string{"alice", "bob"},
			accepted: []string{"bob"},
			rejected: []string{"alice:revoked"},
		},
		{
			name:        "stale CRL, keep: accepted with a warning",
			crls:        []CRL{fx.crl("inter", pkitest.CRLOptions{Number: 4, ThisUpdate: now.Add(-8 * 24 * time.Hour), NextUpdate: now.Add(-time.Hour)})},
			unavailable: RevocationKeep,
			values:      []string{"alice"},
			accepted:    []string{"alice!revocation not checked: CA CN=Issuing,O=certsync test: newest base CRL 4 (inter base) is past its nextUpdate " + utc(now.Add(-time.Hour)) + " (policy.revocationUnavailable: keep)"},
			problems:    []string{"CN=Issuing|newest base CRL 4 (inter base) is past its nextUpdate|U"},
		},
		{
			name:        "stale CRL, reject",
			crls:        []CRL{fx.crl("inter", pkitest.CRLOptions{Number: 4, ThisUpdate: now.Add(-8 * 24 * time.Hour), NextUpdate: now.Add(-time.Hour)})},
			unavailable: RevocationReject,
			values:      []string{"alice"},
			rejected:    []string{"alice:revocation-unknown"},
			reasons: map[string]string{"alice": "revocation status unknown: CA CN=Issuing,O=certsync test: newest base CRL 4 (inter base) is past its nextUpdate " +
				utc(now.Add(-time.Hour)) + " (policy.revocationUnavailable: reject)"},
			problems: []string{"CN=Issuing|past its nextUpdate|U"},
		},
		{
			name: "stale delta, reject",
			crls: []CRL{
				fx.crl("inter", fresh(pkitest.CRLOptions{Number: 5})),
				fx.crl("inter", pkitest.CRLOptions{Number: 6, Delta: true, BaseNumber: 5, ThisUpdate: now.Add(-3 * time.Hour), NextUpdate: now.Add(-time.Hour)}),
			},
			unavailable: RevocationReject,
			values:      []string{"alice"},
			rejected:    []string{"alice:revocation-unknown"},
			problems:    []string{"CN=Issuing|newest delta CRL 6 (inter delta) is past its nextUpdate|U"},
		},
		{
			name: "delta needing a newer base",
			crls: []CRL{
				fx.crl("inter", fresh(pkitest.CRLOptions{Number: 5})),
				fx.crl("inter", fresh(pkitest.CRLOptions{Number: 9, Delta: true, BaseNumber: 8})),
			},
			unavailable: RevocationReject,
			values:      []string{"alice"},
			rejected:    []string{"alice:revocation-unknown"},
			problems:    []string{"CN=Issuing|delta CRL 9 (inter delta) completes base CRL 8, but the newest base found is CRL 5 (inter base)|U"},
		},
		{
			name:        "only a delta",
			crls:        []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{Number: 9, Delta: true, BaseNumber: 8}))},
			unavailable: RevocationReject,
			values:      []string{"alice"},
			rejected:    []string{"alice:revocation-unknown"},
			problems:    []string{"CN=Issuing|only a delta CRL (inter delta) was found, no base CRL|U"},
		},
		{
			name: "CRL signed by the wrong CA",
			crls: []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{SignWith: fx.foreign}))},
			// The forged CRL would clear alice; it must not count.
			unavailable: RevocationReject,
			values:      []string{"alice", "rootLeaf"},
			accepted:    []string{"rootLeaf"},
			rejected:    []string{"alice:revocation-unknown"},
			reasons:     map[string]string{"alice": "revocation status unknown: CA CN=Issuing,O=certsync test: none of its 1 CRLs could be used (policy.revocationUnavailable: reject)"},
			problems: []string{
				"CN=Issuing|inter base: signature does not verify against the CA it names|",
				"CN=Issuing|none of its 1 CRLs could be used|U",
			},
		},
		{
			name: "garbage CRL",
			crls: []CRL{
				{Source: "CN=Issuing,CN=dc1,CN=CDP;certificateRevocationList", DER: []byte("garbage bytes")},
				{Source: "placeholder", DER: []byte{0}},
				{Source: "empty"},
			},
			noRootCRL:   true,
			unavailable: RevocationReject,
			values:      []string{"alice"},
			rejected:    []string{"alice:revocation-unknown"},
			problems: []string{
				"|CN=Issuing,CN=dc1,CN=CDP;certificateRevocationList: not a CRL: x509: |",
				"CN=Root|no CRL of this CA was found|U",
				"CN=Issuing|no CRL of this CA was found|U",
			},
		},
		{
			name:        "no CRL for the issuing CA",
			crls:        nil,
			unavailable: RevocationReject,
			values:      []string{"alice", "rootLeaf"},
			accepted:    []string{"rootLeaf"},
			rejected:    []string{"alice:revocation-unknown"},
			reasons:     map[string]string{"alice": "revocation status unknown: CA CN=Issuing,O=certsync test: no CRL of this CA was found (policy.revocationUnavailable: reject)"},
			problems:    []string{"CN=Issuing|no CRL of this CA was found|U"},
		},
		{
			name:        "no CRLs loaded at all",
			nilSet:      true,
			unavailable: RevocationReject,
			values:      []string{"alice"},
			rejected:    []string{"alice:revocation-unknown"},
			reasons:     map[string]string{"alice": "revocation status unknown: no CRLs were loaded (policy.revocationUnavailable: reject)"},
		},
		{
			name:     "CRL of an untrusted CA is reported, not used",
			crls:     []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{})), fx.crl("foreign", fresh(pkitest.CRLOptions{}))},
			values:   []string{"alice"},
			accepted: []string{"alice"},
			problems: []string{"CN=Foreign|which is not a configured issuing CA; not used|"},
		},
		{
			name: "unknown critical extension",
			crls: []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{Extra: []pkix.Extension{
				{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}}}))},
			unavailable: RevocationReject,
			values:      []string{"alice"},
			rejected:    []string{"alice:revocation-unknown"},
			problems: []string{
				"CN=Issuing|has the critical extension 1.2.3.4, which certsync does not process|",
				"CN=Issuing|none of its 1 CRLs could be used|U",
			},
		},
		{
			name: "CRL for CA certificates only",
			// IssuingDistributionPoint { onlyContainsCACerts [2] TRUE }
			crls:        []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{Extra: []pkix.Extension{idp([]byte{0x30, 0x03, 0x82, 0x01, 0xff})}}))},
			unavailable: RevocationReject,
			values:      []string{"alice"},
			rejected:    []string{"alice:revocation-unknown"},
			problems: []string{
				"CN=Issuing|covers CA certificates only|",
				"CN=Issuing|none of its 1 CRLs could be used|U",
			},
		},
		{
			name: "CRL for user certificates only is complete",
			// IssuingDistributionPoint { onlyContainsUserCerts [1] TRUE }
			crls: []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{
				Revoked: []pkitest.Revoked{fx.revoke("alice", pkitest.ReasonKeyCompromise, revokedAt)},
				Extra:   []pkix.Extension{idp([]byte{0x30, 0x03, 0x81, 0x01, 0xff})}}))},
			values:   []string{"alice"},
			rejected: []string{"alice:revoked"},
		},
		{
			name: "revocation off",
			crls: []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{Revoked: []pkitest.Revoked{
				fx.revoke("alice", pkitest.ReasonKeyCompromise, revokedAt)}}))},
			off:       true,
			noRootCRL: true,
			values:    []string{"alice"},
			accepted:  []string{"alice"},
			problems:  []string{"CN=Root|no CRL of this CA was found|U"},
		},
		{
			name: "revoked and expired: revoked is the code",
			crls: []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{Revoked: []pkitest.Revoked{
				fx.revoke("expired", pkitest.ReasonAffiliationChanged, revokedAt)}}))},
			values:   []string{"expired"},
			rejected: []string{"expired:revoked"},
			reasons: map[string]string{"expired": "revoked on " + at + " (affiliationChanged) by CN=Issuing,O=certsync test, CRL 1; expired on " +
				utc(fx.cert("expired").NotAfter) + " (policy.skipExpired)"},
		},
		{
			name:     "untrusted certificate: no revocation verdict",
			crls:     []CRL{fx.crl("inter", fresh(pkitest.CRLOptions{}))},
			values:   []string{"foreignLeaf"},
			rejected: []string{"foreignLeaf:untrusted"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cas := []*x509.Certificate{fx.root.Cert, fx.inter.Cert}
			crls := tt.crls
			if !tt.noRootCRL {
				crls = append([]CRL{rootCRL}, crls...)
			}
			set, problems := NewRevocationSet(crls, cas, now)
			if !slices.Equal(set.Problems(), problems) {
				t.Errorf("Problems() = %v, NewRevocationSet returned %v", set.Problems(), problems)
			}
			if !tt.nilSet {
				checkProblems(t, problems, tt.problems)
			}
			p := Policy{IssuingCAs: cas, SkipExpired: true, CheckRevocation: !tt.off, Revocation: set, RevocationUnavailable: tt.unavailable}
			if tt.nilSet {
				p.Revocation = nil
			}
			var values []RawValue
			for _, n := range tt.values {
				values = append(values, uc(fx.der(n)))
			}
			ev := Evaluate(values, p, now)
			var accepted, rejected []string
			for _, c := range ev.Accepted {
				a := fx.name(c.SHA256)
				for _, w := range c.Warnings {
					a += "!" + w
				}
				accepted = append(accepted, a)
			}
			for _, r := range ev.Rejected {
				rejected = append(rejected, fx.name(r.SHA256)+":"+r.Code)
				if want, ok := tt.reasons[fx.name(r.SHA256)]; ok && r.Reason != want {
					t.Errorf("%s: reason\n %q, want\n %q", fx.name(r.SHA256), r.Reason, want)
				}
			}
			if !slices.Equal(accepted, tt.accepted) {
				t.Errorf("accepted = %q, want %q", accepted, tt.accepted)
			}
			if !slices.Equal(rejected, tt.rejected) {
				t.Errorf("rejected = %q, want %q", rejected, tt.rejected)
			}
			for n := range tt.reasons {
				if !slices.Contains(rejected, n+":"+RejectRevoked) && !slices.Contains(rejected, n+":"+RejectRevocationUnknown) {
					t.Errorf("no revocation rejection of %s to check the reason of", n)
				}
			}
		})
	}
}

// checkProblems matches problems against "CA substring|text substring|U"
// patterns, in order; the text is the problem's String().
func checkProblems(t *testing.T, got []CRLProblem, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d problems, want %d:\n got %q\nwant %q", len(got), len(want), got, want)
		return
	}
	for i, w := range want {
		parts := strings.Split(w, "|")
		ca, text, unavailable := parts[0], parts[1], parts[2] == "U"
		g := got[i]
		if (ca == "") != (g.CA == "") || !strings.Contains(g.CA, ca) || !strings.Contains(g.String(), text) || g.Unavailable != unavailable {
			t.Errorf("problem %d = %+v (%q), want %q", i, g, g.String(), w)
		}
	}
}

func TestRevocationSetNextUpdate(t *testing.T) {
	fx := newFixture(t)
	now := fx.now
	publish := func(at time.Time) pkix.Extension {
		v, err := asn1.Marshal(at.UTC())
		if err != nil {
			t.Fatal(err)
		}
		return pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 21, 4}, Value: v}
	}
	week, day := now.Add(7*24*time.Hour), now.Add(24*time.Hour)
	tests := []struct {
		name            string
		crls            []CRL
		next, refreshAt time.Time
	}{
		{name: "no CRL", crls: nil},
		{
			name: "base and delta: the delta's",
			crls: []CRL{
				fx.crl("inter", pkitest.CRLOptions{Number: 5, ThisUpdate: now.Add(-time.Hour), NextUpdate: week}),
				fx.crl("inter", pkitest.CRLOptions{Number: 6, Delta: true, BaseNumber: 5, ThisUpdate: now.Add(-time.Hour), NextUpdate: day}),
			},
			next: day, refreshAt: day,
		},
		{
			name: "Next CRL Publish comes first",
			crls: []CRL{
				fx.crl("root", pkitest.CRLOptions{ThisUpdate: now.Add(-time.Hour), NextUpdate: week, Extra: []pkix.Extension{publish(now.Add(3 * time.Hour))}}),
				fx.crl("inter", pkitest.CRLOptions{ThisUpdate: now.Add(-time.Hour), NextUpdate: day}),
			},
			next: day, refreshAt: now.Add(3 * time.Hour),
		},
		{
			name: "stale and superseded CRLs do not count",
			crls: []CRL{
				fx.crl("root", pkitest.CRLOptions{ThisUpdate: now.Add(-48 * time.Hour), NextUpdate: now.Add(-time.Hour)}),
				fx.crl("inter", pkitest.CRLOptions{Number: 1, ThisUpdate: now.Add(-48 * time.Hour), NextUpdate: now.Add(time.Hour)}),
				fx.crl("inter", pkitest.CRLOptions{Number: 2, ThisUpdate: now.Add(-time.Hour), NextUpdate: week}),
			},
			next: week, refreshAt: week,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, _ := NewRevocationSet(tt.crls, []*x509.Certificate{fx.root.Cert, fx.inter.Cert}, now)
			if !set.NextUpdate().Equal(tt.next) || !set.RefreshAt().Equal(tt.refreshAt) {
				t.Errorf("NextUpdate %v RefreshAt %v, want %v %v", set.NextUpdate(), set.RefreshAt(), tt.next, tt.refreshAt)
			}
		})
	}
	var nilSet *RevocationSet
	if !nilSet.NextUpdate().IsZero() || !nilSet.RefreshAt().IsZero() || nilSet.Problems() != nil {
		t.Error("nil set is not empty")
	}
}

// A renewed CA certificate with the same key shares the CRL of the old
// one; a CA with the same name and a new key needs its own.
func TestRevocationSetRenewedCA(t *testing.T) {
	fx := newFixture(t)
	now := fx.now
	renewed := *fx.inter.Cert
	renewed.SerialNumber = big.NewInt(99) // same name and key: same CA to CRLs
	der, err := fx.inter.CRL(pkitest.CRLOptions{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(time.Hour),
		Revoked: []pkitest.Revoked{fx.revoke("alice", pkitest.ReasonKeyCompromise, now.Add(-2*time.Hour))}})
	if err != nil {
		t.Fatal(err)
	}
	set, problems := NewRevocationSet([]CRL{{Source: "s", DER: der}}, []*x509.Certificate{&renewed, fx.inter.Cert}, now)
	if len(problems) != 0 {
		t.Fatalf("problems %v", problems)
	}
	if st := set.status(fx.cert("alice"), &renewed); !st.revoked {
		t.Errorf("alice not revoked through the renewed CA certificate: %+v", st)
	}
	if st := set.status(fx.cert("bob"), fx.inter.Cert); st.revoked || st.unavailable != "" {
		t.Errorf("bob: %+v", st)
	}
	newKey, err := pkitest.NewRootCA("Issuing") // same name, another key
	if err != nil {
		t.Fatal(err)
	}
	if st := set.status(fx.cert("alice"), newKey.Cert); st.unavailable == "" {
		t.Errorf("CA with another key used the CRL: %+v", st)
	}
}
