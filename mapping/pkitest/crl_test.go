package pkitest

import (
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"
)

func TestCRL(t *testing.T) {
	ca, err := NewRootCA("Issuing")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewRootCA("Other")
	if err != nil {
		t.Fatal(err)
	}
	this := time.Now().Add(-2 * time.Hour).Truncate(time.Second).UTC()
	at := this.Add(-time.Hour)
	tests := []struct {
		name      string
		o         CRLOptions
		number    int64
		delta     int64 // base number in the indicator; -1: no indicator
		signedBy  *CA
		revoked   int
		reason    int
		nextAfter time.Duration // NextUpdate - ThisUpdate
	}{
		{name: "defaults", o: CRLOptions{ThisUpdate: this}, number: 1, delta: -1, signedBy: ca, nextAfter: 7 * 24 * time.Hour},
		{
			name: "base with entry",
			o: CRLOptions{Number: 5, ThisUpdate: this, NextUpdate: this.Add(time.Hour),
				Revoked: []Revoked{{Serial: big.NewInt(42), At: at, Reason: ReasonKeyCompromise}}},
			number: 5, delta: -1, signedBy: ca, revoked: 1, reason: ReasonKeyCompromise, nextAfter: time.Hour,
		},
		{
			name: "delta",
			o: CRLOptions{Number: 6, ThisUpdate: this, Delta: true, BaseNumber: 5,
				Revoked: []Revoked{{Serial: big.NewInt(42), At: at, Reason: ReasonRemoveFromCRL}}},
			number: 6, delta: 5, signedBy: ca, revoked: 1, reason: ReasonRemoveFromCRL, nextAfter: 7 * 24 * time.Hour,
		},
		{name: "forged", o: CRLOptions{ThisUpdate: this, SignWith: other}, number: 1, delta: -1, signedBy: other, nextAfter: 7 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := ca.CRL(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			rl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			if rl.Issuer.String() != ca.Cert.Subject.String() || string(rl.AuthorityKeyId) != string(ca.Cert.SubjectKeyId) {
				t.Errorf("issuer %s AKI %x, want %s %x", rl.Issuer, rl.AuthorityKeyId, ca.Cert.Subject, ca.Cert.SubjectKeyId)
			}
			if err := rl.CheckSignatureFrom(tt.signedBy.Cert); err != nil {
				t.Errorf("signature by %s: %v", tt.signedBy.Cert.Subject, err)
			}
			if tt.signedBy != ca {
				if err := rl.CheckSignatureFrom(ca.Cert); err == nil {
					t.Error("forged CRL verifies against the CA it names")
				}
			}
			if rl.Number.Int64() != tt.number {
				t.Errorf("number %v, want %d", rl.Number, tt.number)
			}
			if !rl.ThisUpdate.Equal(this) || rl.NextUpdate.Sub(rl.ThisUpdate) != tt.nextAfter {
				t.Errorf("thisUpdate %v nextUpdate %v, want %v + %v", rl.ThisUpdate, rl.NextUpdate, this, tt.nextAfter)
			}
			base := int64(-1)
			for _, e := range rl.Extensions {
				if e.Id.Equal(oidDeltaCRLIndicator) {
					var n *big.Int
					if _, err := asn1.Unmarshal(e.Value, &n); err != nil || !e.Critical {
						t.Fatalf("delta CRL indicator %x critical %v: %v", e.Value, e.Critical, err)
					}
					base = n.Int64()
				}
			}
			if base != tt.delta {
				t.Errorf("delta CRL indicator base %d, want %d", base, tt.delta)
			}
			if len(rl.RevokedCertificateEntries) != tt.revoked {
				t.Fatalf("%d entries, want %d", len(rl.RevokedCertificateEntries), tt.revoked)
			}
			for _, e := range rl.RevokedCertificateEntries {
				if e.ReasonCode != tt.reason || !e.RevocationTime.Equal(at) || e.SerialNumber.Int64() != 42 {
					t.Errorf("entry %v %v reason %d, want 42 %v %d", e.SerialNumber, e.RevocationTime, e.ReasonCode, at, tt.reason)
				}
			}
		})
	}
	if _, err := ca.CRL(CRLOptions{Revoked: []Revoked{{}}}); err == nil {
		t.Error("entry without serial: no error")
	}
}
