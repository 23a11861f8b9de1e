package pkitest

import (
	"crypto/x509"
	"testing"

	"github.com/smallstep/pkcs7"
)

func TestChainVerifies(t *testing.T) {
	root, err := NewRootCA("Root")
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("Issuing")
	if err != nil {
		t.Fatal(err)
	}
	leaf, key, err := inter.Issue(LeafOptions{CommonName: "alice", Email: "alice@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Cert)
	inters.AddCert(inter.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		t.Fatalf("leaf does not verify: %v", err)
	}
	if len(leaf.SubjectKeyId) == 0 {
		t.Fatal("leaf has no SKI")
	}
	noSKI, _, err := inter.Issue(LeafOptions{CommonName: "bob", NoSKI: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(noSKI.SubjectKeyId) != 0 {
		t.Fatalf("NoSKI leaf has SKI %x", noSKI.SubjectKeyId)
	}
	for name, gen := range map[string]func() ([]byte, error){
		"degenerate": func() ([]byte, error) { return DegeneratePKCS7(leaf, inter.Cert) },
		"signed":     func() ([]byte, error) { return SignedPKCS7(leaf, key, inter.Cert) },
	} {
		blob, err := gen()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p7, err := pkcs7.Parse(blob)
		if err != nil {
			t.Fatalf("%s: parse: %v", name, err)
		}
		if len(p7.Certificates) != 2 {
			t.Fatalf("%s: %d certificates, want 2", name, len(p7.Certificates))
		}
	}
}
