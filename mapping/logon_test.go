package mapping

import (
	"crypto/x509"
	"encoding/asn1"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

func TestLogonPurpose(t *testing.T) {
	smartCard := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
	pkinit := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 2, 3, 4}
	for _, tc := range []struct {
		name    string
		ekus    []x509.ExtKeyUsage
		unknown []asn1.ObjectIdentifier
		want    string // purpose, or a part of the reason
		fit     bool
	}{
		{"client auth", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, "clientAuth", true},
		{"smart-card logon", nil, []asn1.ObjectIdentifier{smartCard}, "smartCardLogon", true},
		{"PKINIT client auth", nil, []asn1.ObjectIdentifier{pkinit}, "pkinitClientAuth", true},
		{"both", []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageClientAuth}, []asn1.ObjectIdentifier{smartCard}, "clientAuth, smartCardLogon", true},
		{"S/MIME only", []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, nil, "emailProtection has none of clientAuth, smartCardLogon, pkinitClientAuth", false},
		{"any purpose", []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, nil, "any has none of", false},
		{"no EKU", nil, nil, "has no extended key usage", false},
		{"unknown EKU", nil, []asn1.ObjectIdentifier{{1, 2, 3}}, "1.2.3 has none of", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &x509.Certificate{ExtKeyUsage: tc.ekus, UnknownExtKeyUsage: tc.unknown}
			got, fit := LogonPurpose(c)
			if fit != tc.fit || FitForLogon(c) != tc.fit || !strings.Contains(got, tc.want) || (tc.fit && got != tc.want) {
				t.Fatalf("LogonPurpose = %q, %v; want %q, %v", got, fit, tc.want, tc.fit)
			}
		})
	}
}

// TestEvaluateOtherPurpose: a certificate refused only for the policy's
// extended key usage is rejected and listed for targets with a purpose of
// their own; one refused for anything else as well is not.
func TestEvaluateOtherPurpose(t *testing.T) {
	root, err := pkitest.NewRootCA("logon test root")
	if err != nil {
		t.Fatal(err)
	}
	smartCard := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
	card, _, err := root.Issue(pkitest.LeafOptions{CommonName: "card", UnknownEKUs: []asn1.ObjectIdentifier{smartCard}})
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := root.Issue(pkitest.LeafOptions{CommonName: "old", UnknownEKUs: []asn1.ObjectIdentifier{smartCard},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{IssuingCAs: []*x509.Certificate{root.Cert}, ExtKeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageClientAuth}, SkipExpired: true}
	ev := Evaluate([]RawValue{{AttrUserCertificate, card.Raw}, {AttrUserSMIMECertificate, card.Raw}, {AttrUserCertificate, expired.Raw}}, p, time.Now())
	if len(ev.Accepted) != 0 || len(ev.Rejected) != 3 {
		t.Fatalf("accepted %d, rejected %+v", len(ev.Accepted), ev.Rejected)
	}
	if len(ev.OtherPurpose) != 1 || ev.OtherPurpose[0].Cert.Subject.CommonName != "card" || len(ev.OtherPurpose[0].Attributes) != 2 {
		t.Fatalf("OtherPurpose = %+v; want the smart card once, from both attributes", ev.OtherPurpose)
	}
}
