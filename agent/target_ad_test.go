package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// kbCA issues certificates under the issuer of KB5014754's own example,
// encoded as AD CS encodes a domain CA's name: DC=com, DC=contoso, then
// CN=CONTOSO-DC-CA (certutil shows it "CN=CONTOSO-DC-CA, DC=contoso,
// DC=com").
func kbCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	oidDC := asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	name, err := asn1.Marshal(pkix.RDNSequence{
		{{Type: oidDC, Value: "com"}}, {{Type: oidDC, Value: "contoso"}}, {{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "CONTOSO-DC-CA"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), RawSubject: name, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

func kbLeaf(t *testing.T, ca *x509.Certificate, key *ecdsa.PrivateKey, serial *big.Int, ekus []x509.ExtKeyUsage, unknown []asn1.ObjectIdentifier, ext ...pkix.Extension) *x509.Certificate {
	t.Helper()
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "ann"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: ekus, UnknownExtKeyUsage: unknown, SubjectKeyId: []byte{1, 2, 3, 4}, ExtraExtensions: ext}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, leafKey.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestADTargetWant checks the values against KB5014754's worked example
// ("X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SR>1200000000AC11000000002B"
// for the certificate certutil shows with serial 2b0000000011ac0000000012)
// and which certificates get mappings at all.
func TestADTargetWant(t *testing.T) {
	ca, key := kbCA(t)
	kbSerial, _ := new(big.Int).SetString("2b0000000011ac0000000012", 16)
	smartCard := []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}}
	sid := pkitest.SIDExtension("S-1-5-21-1-2-3-1104")
	const kb = "X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SR>1200000000ac11000000002b"
	for _, tc := range []struct {
		name     string
		cert     *x509.Certificate
		settings ldapsrc.AltSecuritySettings
		want     []string
		// policyRefused: policy.extendedKeyUsages refused it, so Evaluate
		// put it in OtherPurpose, not Accepted.
		policyRefused bool
	}{
		{"KB5014754 example, client auth", kbLeaf(t, ca, key, kbSerial, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil), ldapsrc.AltSecuritySettings{Enabled: true}, []string{kb}, false},
		{"smart-card logon EKU", kbLeaf(t, ca, key, kbSerial, nil, smartCard), ldapsrc.AltSecuritySettings{Enabled: true}, []string{kb}, false},
		{"every kind, in order", kbLeaf(t, ca, key, kbSerial, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil),
			ldapsrc.AltSecuritySettings{Enabled: true, Mappings: []string{"SKI", "ISSUER-SERIAL"}}, []string{"X509:<SKI>01020304", kb}, false},
		{"S/MIME only: no logon", kbLeaf(t, ca, key, kbSerial, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, nil), ldapsrc.AltSecuritySettings{Enabled: true}, nil, false},
		{"SID extension: strongly mapped already", kbLeaf(t, ca, key, kbSerial, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, sid), ldapsrc.AltSecuritySettings{Enabled: true}, nil, false},
		{"SID extension, mapSIDCertificates", kbLeaf(t, ca, key, kbSerial, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, sid), ldapsrc.AltSecuritySettings{Enabled: true, MapSIDCertificates: true}, []string{kb}, false},
		// The target's own EKU policy, whatever the general one says.
		{"smart-card logon only, refused by policy.extendedKeyUsages", kbLeaf(t, ca, key, kbSerial, nil, smartCard), ldapsrc.AltSecuritySettings{Enabled: true}, []string{kb}, true},
		{"PKINIT client auth only, refused by policy.extendedKeyUsages", kbLeaf(t, ca, key, kbSerial, nil, []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 2, 3, 4}}), ldapsrc.AltSecuritySettings{Enabled: true}, []string{kb}, true},
		{"any purpose: not mapped", kbLeaf(t, ca, key, kbSerial, []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, nil), ldapsrc.AltSecuritySettings{Enabled: true}, nil, false},
		{"no EKU: not mapped", kbLeaf(t, ca, key, kbSerial, nil, nil), ldapsrc.AltSecuritySettings{Enabled: true}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, err := NewADTarget([]ADSource{{Name: "contoso", Settings: tc.settings, Open: func(context.Context) (ADDirectory, error) { return nil, nil }}})
			if err != nil {
				t.Fatal(err)
			}
			ev := mapping.Evaluation{Accepted: []mapping.Certificate{{Cert: tc.cert, SHA256: "a"}}}
			if tc.policyRefused {
				ev = mapping.Evaluation{OtherPurpose: ev.Accepted}
			}
			if got := target.Want(TargetAltSecurityIdentities, "contoso", ev); !slices.Equal(got, tc.want) {
				t.Fatalf("Want = %q, want %q", got, tc.want)
			}
			v := target.Verdicts(TargetAltSecurityIdentities, "contoso", ev)
			if len(v) != 1 || (v[0].Verdict == VerdictUsed) != (tc.want != nil) || v[0].PolicyRejected != tc.policyRefused || v[0].Reason == "" {
				t.Fatalf("Verdicts = %+v; want one, used %v, policyRejected %v, with a reason", v, tc.want != nil, tc.policyRefused)
			}
			if got := target.Want(TargetAltSecurityIdentities, "fabrikam", ev); got != nil {
				t.Fatalf("a directory without the target wants %q", got)
			}
		})
	}
}

func TestMappingStrength(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SR>1200000000AC11000000002B", MappingStrong},
		{"X509:<SKI>123456789abcdef", MappingStrong},
		{"X509:<SHA1-PUKEY>123456789abcdef", MappingStrong},
		{"X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SID>S-1-5-21-1-2-3-1104", MappingStrong},
		{"X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<S>DC=com,DC=contoso,CN=Users,CN=ann", MappingWeak},
		{"X509:<S>DC=com,DC=contoso,CN=Users,CN=ann", MappingWeak},
		{"X509:<RFC822>ann@contoso.com", MappingWeak},
		{"Kerberos:ann@CONTOSO.COM", MappingKerberos},
		{"something else", MappingOther},
		{"X509:<PN>ann@contoso.com", MappingOther},
	} {
		if got := MappingStrength(tc.value); got != tc.want {
			t.Errorf("MappingStrength(%q) = %s, want %s", tc.value, got, tc.want)
		}
	}
}
