package mapping

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

// TestEvaluationUntil checks the promise a remembered evaluation rests
// on: until Until, the same values under the same policy are judged the
// same; at Until, the verdict the boundary belongs to changes.
func TestEvaluationUntil(t *testing.T) {
	fx := newFixture(t)
	pol := Policy{IssuingCAs: []*x509.Certificate{fx.root.Cert, fx.inter.Cert}, SkipExpired: true}
	earliest := func(ts ...time.Time) time.Time {
		var out time.Time
		for _, v := range ts {
			if v.After(fx.now) && (out.IsZero() || v.Before(out)) {
				out = v
			}
		}
		return out
	}
	after := func(c *x509.Certificate) time.Time { return c.NotAfter.Add(time.Nanosecond) }
	// An intermediate that expires before its leaf, carried only in the
	// user's bag: the leaf turns untrusted when it expires.
	short := shortIntermediate(t, fx.root, fx.now.Add(2*time.Hour))
	leaf, _, err := short.Issue(pkitest.LeafOptions{CommonName: "carol", NotBefore: fx.now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	bag, err := pkitest.DegeneratePKCS7(leaf, short.Cert)
	if err != nil {
		t.Fatal(err)
	}
	cas := []time.Time{after(fx.root.Cert), after(fx.inter.Cert)}
	tests := []struct {
		name   string
		values []RawValue
		want   time.Time
		// changes: the evaluation at want differs from the one at now.
		changes bool
		// rootOnly trusts only the root: the bag's intermediate is the
		// user's own.
		rootOnly bool
	}{
		{"a valid certificate holds until it or a CA expires", []RawValue{uc(fx.der("alice"))},
			earliest(append(cas, after(fx.cert("alice")))...), false, false},
		{"a certificate not valid yet is accepted once it is", []RawValue{uc(fx.der("alice")), uc(fx.der("future"))},
			fx.cert("future").NotBefore, true, false},
		{"an expired certificate stays expired", []RawValue{uc(fx.der("expired"))},
			earliest(cas...), false, false},
		{"a bag's intermediate bounds it too", []RawValue{smime(bag)}, after(short.Cert), true, true},
		{"no certificate: only the CAs", nil, earliest(cas...), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := pol
			if tt.rootOnly {
				pol.IssuingCAs = []*x509.Certificate{fx.root.Cert}
				pol.SkipExpired = false
			}
			ev := Evaluate(tt.values, pol, fx.now)
			if len(tt.values) > 0 && len(ev.Accepted)+len(ev.Rejected) == 0 {
				t.Fatal("nothing judged")
			}
			if !ev.Until.Equal(tt.want) {
				t.Fatalf("Until = %v, want %v", ev.Until, tt.want)
			}
			just := Evaluate(tt.values, pol, ev.Until.Add(-time.Nanosecond))
			if !sameVerdicts(ev, just) {
				t.Errorf("the evaluation changed before Until: %v then %v", verdictCodes(ev), verdictCodes(just))
			}
			at := Evaluate(tt.values, pol, ev.Until)
			if got := !sameVerdicts(ev, at); tt.changes && !got {
				t.Errorf("the evaluation at Until is the same: %v", verdictCodes(at))
			}
		})
	}
	t.Run("CRLs due bound it", func(t *testing.T) {
		due := fx.now.Add(90 * time.Minute)
		p := pol
		p.CheckRevocation = true
		p.Revocation = &RevocationSet{nextUpdate: due}
		if ev := Evaluate([]RawValue{uc(fx.der("alice"))}, p, fx.now); !ev.Until.Equal(earliest(append(cas, due)...)) {
			t.Errorf("Until = %v, want the CRLs' nextUpdate %v at the latest", ev.Until, due)
		}
	})
}

func verdictCodes(ev Evaluation) []string {
	var out []string
	for _, c := range ev.Accepted {
		out = append(out, "accepted:"+c.SHA256[:8])
	}
	for _, r := range ev.Rejected {
		out = append(out, r.Code+":"+r.SHA256[:8])
	}
	return out
}

func sameVerdicts(a, b Evaluation) bool { return slices.Equal(verdictCodes(a), verdictCodes(b)) }

// shortIntermediate is a CA under root valid until notAfter.
func shortIntermediate(t *testing.T, root *pkitest.CA, notAfter time.Time) *pkitest.CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Short-lived issuing"},
		NotBefore: notAfter.Add(-24 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, SubjectKeyId: []byte{1, 2, 3},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, &key.PublicKey, root.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &pkitest.CA{Cert: c, Key: key}
}
