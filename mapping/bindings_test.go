package mapping

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/certsync/certsync/mapping/pkitest"
)

// testdata/entra-doc-leaf.pem was made once with OpenSSL so that its
// bindings can be checked against values computed outside this code:
//
//	issuer  /C=US/O=U.SGovernment/OU=DoD/OU=PKI/OU=CONTRACTOR/CN=CRL.BALA.SelfSignedCertificate
//	        (the issuer of Microsoft's worked example)
//	serial  0x48efa06ba8127299499b069f133441b2 (the serial of that example)
//	openssl x509 -noout -fingerprint -sha1: B4:DC:F1:75:08:E1:B2:99:7A:C2:74:84:0F:3C:7B:F6:E2:CB:F2:0C
//	openssl x509 -noout -ext subjectKeyIdentifier: A1:68:5F:63:BD:E3:39:38:A3:C7:90:79:D1:07:03:CC:CF:7E:1F:C5
func loadEntraDocLeaf(t *testing.T) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile("testdata/entra-doc-leaf.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("testdata/entra-doc-leaf.pem: no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBindingKnownValues(t *testing.T) {
	c := loadEntraDocLeaf(t)
	tests := []struct {
		kind BindingKind
		want string
	}{
		{BindingSKI, "X509:<SKI>A1685F63BDE33938A3C79079D10703CCCF7E1FC5"},
		{BindingSHA1PublicKey, "X509:<SHA1-PUKEY>B4DCF17508E1B2997AC274840F3C7BF6E2CBF20C"},
		// Microsoft's documented value for this issuer and serial, byte for
		// byte (without the stray space the page shows after <SR>).
		{BindingIssuerSerial, "X509:<I>C=US,O=U.SGovernment,OU=DoD,OU=PKI,OU=CONTRACTOR,CN=CRL.BALA.SelfSignedCertificate<SR>b24134139f069b49997212a86ba0ef48"},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			got, err := Binding(c, tt.kind)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Binding = %q\n          want %q", got, tt.want)
			}
		})
	}
}

func TestBindingErrors(t *testing.T) {
	fx := newFixture(t)
	longCA, err := pkitest.NewRootCA(strings.Repeat("x", 1100))
	if err != nil {
		t.Fatal(err)
	}
	longLeaf, _, err := longCA.Issue(pkitest.LeafOptions{CommonName: "long"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cert    *x509.Certificate
		kind    BindingKind
		wantErr string
	}{
		{"no SKI", fx.cert("noSKI"), BindingSKI, `binding SKI for certificate "CN=noSKI,O=certsync test" (serial `},
		{"issuer too long", longLeaf, BindingIssuerSerial, "characters, above Entra's limit of 1024"},
		{"nil certificate", nil, BindingSKI, "nil certificate"},
		{"unknown kind", fx.cert("alice"), BindingKind("UPN"), `unknown binding kind "UPN"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Binding(tt.cert, tt.kind)
			if err == nil {
				t.Fatalf("Binding = %q, want error", v)
			}
			if !strings.HasPrefix(err.Error(), "mapping: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	// What the long issuer cannot produce, the others still can.
	if _, err := Binding(longLeaf, BindingSKI); err != nil {
		t.Errorf("SKI of the long-issuer leaf: %v", err)
	}
}

func TestParseBindingKind(t *testing.T) {
	tests := []struct {
		in      string
		want    BindingKind
		wantErr bool
	}{
		{in: "SKI", want: BindingSKI},
		{in: "ski", want: BindingSKI},
		{in: "Sha1-PuKey", want: BindingSHA1PublicKey},
		{in: " issuer-serial ", want: BindingIssuerSerial},
		{in: "thumbprint", wantErr: true},
		{in: "SHA1PUKEY", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseBindingKind(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseBindingKind(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestEntraSerial(t *testing.T) {
	hexInt := func(s string) *big.Int {
		n, ok := new(big.Int).SetString(s, 16)
		if !ok {
			t.Fatalf("bad hex %q", s)
		}
		return n
	}
	tests := []struct {
		in      *big.Int
		want    string
		wantErr bool
	}{
		{in: hexInt("48efa06ba8127299499b069f133441b2"), want: "b24134139f069b49997212a86ba0ef48"},
		{in: hexInt("01"), want: "01"},
		{in: hexInt("0102"), want: "0201"},
		// DER keeps a leading 00 when the top bit is set; Windows reverses
		// the INTEGER's bytes as they are, 00 included.
		{in: hexInt("80"), want: "8000"},
		{in: hexInt("ff01"), want: "01ff00"},
		{in: big.NewInt(0), want: "00"},
		{in: big.NewInt(-1), wantErr: true},
		{in: nil, wantErr: true},
	}
	for _, tt := range tests {
		got, err := entraSerial(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("entraSerial(%v) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestEntraDN(t *testing.T) {
	oid := func(s ...int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier(s) }
	atv := func(t asn1.ObjectIdentifier, v any) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: t, Value: v}
	}
	cn, ou, o := oid(2, 5, 4, 3), oid(2, 5, 4, 11), oid(2, 5, 4, 10)
	dc := oid(0, 9, 2342, 19200300, 100, 1, 25)
	tests := []struct {
		name    string
		rdns    pkix.RDNSequence
		want    string
		wantErr bool
	}{
		{
			name: "encoding order, Windows names, no spaces",
			rdns: pkix.RDNSequence{
				{atv(dc, "com")}, {atv(dc, "contoso")}, {atv(oid(2, 5, 4, 6), "US")}, {atv(oid(2, 5, 4, 8), "WA")},
				{atv(oid(2, 5, 4, 7), "Redmond")}, {atv(oid(1, 2, 840, 113549, 1, 9, 1), "ca@contoso.com")},
				{atv(cn, "CONTOSO-DC-CA")},
			},
			want: "DC=com,DC=contoso,C=US,S=WA,L=Redmond,E=ca@contoso.com,CN=CONTOSO-DC-CA",
		},
		{
			name: "multi-valued RDN separated by a space",
			rdns: pkix.RDNSequence{{atv(o, "Contoso")}, {atv(cn, "CA"), atv(ou, "PKI")}},
			want: "O=Contoso,CN=CA OU=PKI",
		},
		{
			name: "values quoted like Windows",
			rdns: pkix.RDNSequence{
				{atv(o, "Contoso, Inc.")}, {atv(ou, `say "hi"`)}, {atv(ou, " padded")}, {atv(ou, "")},
				{atv(ou, "a+b")}, {atv(ou, "x#1;y")}, {atv(cn, "plain value")},
			},
			want: `O="Contoso, Inc.",OU="say ""hi""",OU=" padded",OU="",OU="a+b",OU="x#1;y",CN=plain value`,
		},
		{
			name: "unknown attribute type by OID",
			rdns: pkix.RDNSequence{{atv(oid(1, 2, 3, 4), "x")}, {atv(cn, "CA")}},
			want: "OID.1.2.3.4=x,CN=CA",
		},
		{name: "non-string value", rdns: pkix.RDNSequence{{atv(cn, 42)}}, wantErr: true},
		{name: "empty name", rdns: pkix.RDNSequence{}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := asn1.Marshal(tt.rdns)
			if err != nil {
				t.Fatal(err)
			}
			got, err := entraDN(raw)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("entraDN = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if _, err := entraDN(append(mustMarshal(t, pkix.RDNSequence{{atv(cn, "CA")}}), 0)); err == nil {
		t.Error("entraDN accepted trailing data")
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCertificateUserIDs(t *testing.T) {
	fx := newFixture(t)
	bind := func(name string, k BindingKind) string {
		v, err := Binding(fx.cert(name), k)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	acc := func(names ...string) []Certificate {
		var cs []Certificate
		for _, n := range names {
			cs = append(cs, Certificate{Cert: fx.cert(n), SHA256: sha256Hex(fx.der(n))})
		}
		return cs
	}
	tests := []struct {
		name  string
		certs []Certificate
		kinds []BindingKind
		want  []string
	}{
		{
			name:  "certificate order, then kind order",
			certs: acc("alice", "bob"),
			kinds: []BindingKind{BindingSKI, BindingIssuerSerial},
			want: []string{
				bind("alice", BindingSKI), bind("alice", BindingIssuerSerial),
				bind("bob", BindingSKI), bind("bob", BindingIssuerSerial),
			},
		},
		{
			name:  "kind a certificate cannot produce is skipped",
			certs: acc("noSKI", "alice"),
			kinds: []BindingKind{BindingSKI, BindingSHA1PublicKey},
			want:  []string{bind("noSKI", BindingSHA1PublicKey), bind("alice", BindingSKI), bind("alice", BindingSHA1PublicKey)},
		},
		{
			name:  "duplicates removed",
			certs: acc("alice", "alice"),
			kinds: []BindingKind{BindingSHA1PublicKey, BindingSHA1PublicKey},
			want:  []string{bind("alice", BindingSHA1PublicKey)},
		},
		{name: "nothing to bind is nil", certs: acc("noSKI"), kinds: []BindingKind{BindingSKI}, want: nil},
		{name: "no certificates is nil", kinds: []BindingKind{BindingSKI}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CertificateUserIDs(tt.certs, tt.kinds)
			if !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("CertificateUserIDs = %q, want %q", got, tt.want)
			}
		})
	}
}
