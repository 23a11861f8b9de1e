package mapping

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

// upnSAN is a SubjectAltName extension holding one UPN otherName, as
// ADCS writes it in smart-card logon certificates.
func upnSAN(t testing.TB, upn string) pkix.Extension {
	t.Helper()
	val, err := asn1.MarshalWithParams(upn, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	// The value is [0] EXPLICIT: written out by hand, as encoding/asn1
	// writes a RawValue's FullBytes without the tag its field asks for.
	other, err := asn1.MarshalWithParams(struct {
		Type  asn1.ObjectIdentifier
		Value asn1.RawValue
	}{oidUPN, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: val}}, "tag:0")
	if err != nil {
		t.Fatal(err)
	}
	san, err := asn1.Marshal([]asn1.RawValue{{FullBytes: other}})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidSubjectAltName, Value: san}
}

// A certificate is published for the user it names and no other: SAN
// e-mail, UPN otherName or subject emailAddress against mail,
// userPrincipalName or an smtp: proxy address, case-insensitively.
func TestIdentityCheck(t *testing.T) {
	ca, err := pkitest.NewRootCA("identity CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(o pkitest.LeafOptions) *x509.Certificate {
		c, _, err := ca.Issue(o)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	emailAttr := pkix.AttributeTypeAndValue{Type: oidEmailAddress, Value: "Ann@Example.test"}
	ann := SourceUser{Anchor: "a", Attributes: map[string]string{"mail": "ann@example.test", "userprincipalname": "ann@corp.example.test",
		"proxyaddresses": "SMTP:ann@example.test\nsmtp:a.nother@example.test\nX500:/o=old"}}
	cases := []struct {
		name     string
		cert     *x509.Certificate
		mode     string
		user     SourceUser
		code     string
		mentions []string
		warn     string
	}{
		{"SAN e-mail is mail", issue(pkitest.LeafOptions{CommonName: "ann", Email: "ANN@example.test"}), IdentityMatch, ann, "", nil, ""},
		{"UPN otherName", issue(pkitest.LeafOptions{CommonName: "ann", Extensions: []pkix.Extension{upnSAN(t, "Ann@Corp.Example.test")}}), IdentityMatch, ann, "", nil, ""},
		{"smtp proxy address", issue(pkitest.LeafOptions{CommonName: "ann", Email: "a.nother@example.test"}), IdentityMatch, ann, "", nil, ""},
		{"subject emailAddress", issue(pkitest.LeafOptions{CommonName: "ann", SubjectNames: []pkix.AttributeTypeAndValue{emailAttr}}), IdentityMatch, ann, "", nil, ""},
		{"another user's", issue(pkitest.LeafOptions{CommonName: "bob", Email: "bob@example.test"}), IdentityMatch, ann, RejectIdentityMismatch,
			[]string{"bob@example.test", "ann@example.test", "ann@corp.example.test"}, ""},
		{"another user's UPN", issue(pkitest.LeafOptions{CommonName: "bob", Extensions: []pkix.Extension{upnSAN(t, "bob@corp.example.test")}}), IdentityMatch, ann, RejectIdentityMismatch,
			[]string{"bob@corp.example.test"}, ""},
		{"X500 proxy address is no identity", issue(pkitest.LeafOptions{CommonName: "x", Email: "/o=old"}), IdentityMatch, ann, RejectIdentityMismatch, nil, ""},
		{"names nobody", issue(pkitest.LeafOptions{CommonName: "ann"}), IdentityMatch, ann, RejectNoIdentity, []string{"names no identity"}, ""},
		{"names nobody, matchNamed", issue(pkitest.LeafOptions{CommonName: "ann"}), IdentityMatchNamed, ann, "", nil, "names no identity"},
		{"another user's, matchNamed", issue(pkitest.LeafOptions{CommonName: "bob", Email: "bob@example.test"}), IdentityMatchNamed, ann, RejectIdentityMismatch, nil, ""},
		{"off", issue(pkitest.LeafOptions{CommonName: "bob", Email: "bob@example.test"}), IdentityOff, ann, "", nil, ""},
		{"user without identities", issue(pkitest.LeafOptions{CommonName: "ann", Email: "ann@example.test"}), IdentityMatch, SourceUser{Anchor: "z"}, RejectIdentityMismatch,
			[]string{"no mail, userPrincipalName or proxyAddresses"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Policy{IssuingCAs: []*x509.Certificate{ca.Cert}, Identity: tc.mode, AccountIdentities: UserIdentities(tc.user)}
			ev := Evaluate([]RawValue{{Attribute: AttrUserCertificate, Data: tc.cert.Raw}}, p, time.Now())
			if tc.code == "" {
				if len(ev.Accepted) != 1 {
					t.Fatalf("rejected: %+v", ev.Rejected)
				}
				if got := strings.Join(ev.Accepted[0].Warnings, "; "); !strings.Contains(got, tc.warn) || (tc.warn == "" && got != "") {
					t.Fatalf("warnings %q, want %q", got, tc.warn)
				}
				return
			}
			if len(ev.Rejected) != 1 || ev.Rejected[0].Code != tc.code {
				t.Fatalf("want %s, got accepted %d, rejected %+v", tc.code, len(ev.Accepted), ev.Rejected)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(ev.Rejected[0].Reason, m) {
					t.Errorf("reason %q does not name %q", ev.Rejected[0].Reason, m)
				}
			}
		})
	}
}

// The SAN walk reads outside bytes: it never panics and never loops.
func FuzzUPNNames(f *testing.F) {
	f.Add(upnSAN(f, "ann@corp.example.test").Value)
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x05, 0xa0, 0x03, 0x06, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		names, err := upnNames(der)
		if err != nil && names != nil {
			t.Fatalf("names %v with error %v", names, err)
		}
	})
}

// A UPN otherName as OpenSSL writes it (openssl req -addext
// "subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:Ann@Corp.test,email:x@y.test").
func TestCertificateIdentitiesOfAnOpenSSLCertificate(t *testing.T) {
	b, err := os.ReadFile("testdata/upn-openssl.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	got, err := CertificateIdentities(c)
	if err != nil || strings.Join(got, ",") != "x@y.test,ann@corp.test" {
		t.Fatalf("identities %v, %v", got, err)
	}
}
