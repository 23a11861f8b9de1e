package mapping

import (
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

// fixture is a test PKI: a root, an issuing intermediate under it, a
// foreign root, and named leaves with the properties the policy looks at.
// names maps the SHA-256 of every certificate and registered blob to a
// name, so verdicts read as names in test failures.
type fixture struct {
	t                    testing.TB
	now                  time.Time
	root, inter, foreign *pkitest.CA
	certs                map[string]*x509.Certificate
	keys                 map[string]crypto.Signer
	names                map[string]string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	root, err := pkitest.NewRootCA("Root")
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("Issuing")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := pkitest.NewRootCA("Foreign")
	if err != nil {
		t.Fatal(err)
	}
	// pkitest CAs are valid from an hour before their creation: leaves that
	// must verify at a moment inside their own validity stay within it.
	now := time.Now().Truncate(time.Second)
	fx := &fixture{
		t: t, now: now, root: root, inter: inter, foreign: foreign,
		certs: map[string]*x509.Certificate{},
		keys:  map[string]crypto.Signer{},
		names: map[string]string{},
	}
	for _, ca := range []struct {
		name string
		ca   *pkitest.CA
	}{{"root", root}, {"inter", inter}, {"foreign", foreign}} {
		fx.certs[ca.name] = ca.ca.Cert
		fx.names[sha256Hex(ca.ca.Cert.Raw)] = ca.name
	}
	at := func(d time.Duration) time.Time { return now.Add(d) }
	// Distinct NotBefore values keep the order of accepted certificates
	// deterministic (ties are ordered by SHA-256, which is random here).
	for _, l := range []struct {
		name string
		ca   *pkitest.CA
		o    pkitest.LeafOptions
	}{
		{"alice", inter, pkitest.LeafOptions{NotBefore: at(-30 * time.Minute)}},
		{"bob", inter, pkitest.LeafOptions{NotBefore: at(-40 * time.Minute)}},
		{"older", inter, pkitest.LeafOptions{NotBefore: at(-48 * time.Hour)}},
		{"rootLeaf", root, pkitest.LeafOptions{NotBefore: at(-35 * time.Minute)}},
		{"foreignLeaf", foreign, pkitest.LeafOptions{NotBefore: at(-36 * time.Minute)}},
		{"noSKI", inter, pkitest.LeafOptions{NotBefore: at(-31 * time.Minute), NoSKI: true}},
		{"expired", inter, pkitest.LeafOptions{NotBefore: at(-50 * time.Minute), NotAfter: at(-10 * time.Minute)}},
		{"future", inter, pkitest.LeafOptions{NotBefore: at(time.Hour)}},
		{"noEKU", inter, pkitest.LeafOptions{NotBefore: at(-32 * time.Minute), NoEKU: true}},
		{"serverOnly", inter, pkitest.LeafOptions{NotBefore: at(-33 * time.Minute), EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{"anyEKU", inter, pkitest.LeafOptions{NotBefore: at(-34 * time.Minute), EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}},
		{"sha1Leaf", inter, pkitest.LeafOptions{NotBefore: at(-37 * time.Minute), SHA1: true}},
		{"allWrong", foreign, pkitest.LeafOptions{NotBefore: at(-50 * time.Minute), NotAfter: at(-10 * time.Minute), NoSKI: true, NoEKU: true}},
	} {
		l.o.CommonName = l.name
		c, key, err := l.ca.Issue(l.o)
		if err != nil {
			t.Fatal(err)
		}
		fx.certs[l.name] = c
		fx.keys[l.name] = key
		fx.names[sha256Hex(c.Raw)] = l.name
	}
	return fx
}

// cert returns the named certificate.
func (fx *fixture) cert(name string) *x509.Certificate {
	c, ok := fx.certs[name]
	if !ok {
		fx.t.Fatalf("fixture has no certificate %q", name)
	}
	return c
}

func (fx *fixture) der(name string) []byte { return fx.cert(name).Raw }

// blob registers data under name and returns it.
func (fx *fixture) blob(name string, data []byte) []byte {
	fx.names[sha256Hex(data)] = name
	return data
}

// degenerate is a certificates-only PKCS#7 of the named certificates.
func (fx *fixture) degenerate(names ...string) []byte {
	var cs []*x509.Certificate
	for _, n := range names {
		cs = append(cs, fx.cert(n))
	}
	p7, err := pkitest.DegeneratePKCS7(cs...)
	if err != nil {
		fx.t.Fatal(err)
	}
	return p7
}

// outlook is a SignedData signed by the named leaf carrying it and its
// chain, as Outlook publishes to userSMIMECertificate.
func (fx *fixture) outlook(leaf string, chain ...string) []byte {
	var cs []*x509.Certificate
	for _, n := range chain {
		cs = append(cs, fx.cert(n))
	}
	p7, err := pkitest.SignedPKCS7(fx.cert(leaf), fx.keys[leaf], cs...)
	if err != nil {
		fx.t.Fatal(err)
	}
	return p7
}

// ber re-encodes a PKCS#7 with indefinite lengths, as Outlook writes.
func (fx *fixture) ber(der []byte) []byte {
	b, err := pkitest.ToBER(der)
	if err != nil {
		fx.t.Fatal(err)
	}
	return b
}

// name of a certificate or registered blob by its SHA-256.
func (fx *fixture) name(sum string) string {
	if n, ok := fx.names[sum]; ok {
		return n
	}
	return "sha256:" + sum
}

func uc(data []byte) RawValue    { return RawValue{Attribute: AttrUserCertificate, Data: data} }
func smime(data []byte) RawValue { return RawValue{Attribute: AttrUserSMIMECertificate, Data: data} }
