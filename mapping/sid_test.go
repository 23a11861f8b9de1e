package mapping

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

const (
	sidAnn = "S-1-5-21-3623811015-3361044348-30300820-1013"
	sidBen = "S-1-5-21-3623811015-3361044348-30300820-1014"
)

func TestSIDExtension(t *testing.T) {
	root, err := pkitest.NewRootCA("SID Root")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ext ...pkix.Extension) *x509.Certificate {
		c, _, err := root.Issue(pkitest.LeafOptions{CommonName: "ann", Extensions: ext})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	broken := pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2}, Value: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}
	notSID := pkitest.SIDExtension("S-1-5-21-x")
	policy := Policy{IssuingCAs: []*x509.Certificate{root.Cert}, ExtKeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, tc := range []struct {
		name    string
		cert    *x509.Certificate
		account string
		wantSID string
		present bool
		code    string // "" accepted
	}{
		{"no extension", issue(), sidAnn, "", false, ""},
		{"the user's own SID", issue(pkitest.SIDExtension(sidAnn)), sidAnn, sidAnn, true, ""},
		{"another account's SID", issue(pkitest.SIDExtension(sidBen)), sidAnn, sidBen, true, RejectSIDMismatch},
		{"no objectSid read: nothing checked", issue(pkitest.SIDExtension(sidBen)), "", sidBen, true, ""},
		{"unreadable extension", issue(broken), sidAnn, "", true, RejectSIDMismatch},
		{"text that is no SID", issue(notSID), sidAnn, "", true, RejectSIDMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sid, ok, err := CertificateSID(tc.cert)
			if ok != tc.present || sid != tc.wantSID || (err != nil) != (tc.present && tc.wantSID == "") {
				t.Fatalf("CertificateSID = %q, %v, %v; want %q, %v", sid, ok, err, tc.wantSID, tc.present)
			}
			p := policy
			p.AccountSID = tc.account
			ev := Evaluate([]RawValue{{Attribute: AttrUserCertificate, Data: tc.cert.Raw}}, p, time.Now())
			switch {
			case tc.code == "" && len(ev.Accepted) != 1:
				t.Fatalf("rejected: %+v", ev.Rejected)
			case tc.code != "" && (len(ev.Rejected) != 1 || ev.Rejected[0].Code != tc.code):
				t.Fatalf("verdict %+v, want rejected as %s", ev, tc.code)
			case tc.code == RejectSIDMismatch && tc.wantSID != "" && !strings.Contains(ev.Rejected[0].Reason, tc.wantSID):
				t.Fatalf("reason %q does not name the certificate's SID", ev.Rejected[0].Reason)
			}
		})
	}
}

func FuzzSIDExtension(f *testing.F) {
	for _, s := range []string{sidAnn, "S-1-5-18", "S-1-x", ""} {
		f.Add(pkitest.SIDExtension(s).Value)
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		sid, err := parseSIDExtension(der)
		if err == nil && !sidText.MatchString(sid) {
			t.Fatalf("accepted %q, which is not a SID", sid)
		}
	})
}
