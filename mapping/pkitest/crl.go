package pkitest

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"
)

// CRL reason codes of RFC 5280 section 5.3.1, as written in a CRL entry's
// reasonCode extension.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
	ReasonRemoveFromCRL        = 8 // delta CRLs only: the hold was lifted
	ReasonPrivilegeWithdrawn   = 9
	ReasonAACompromise         = 10
)

// oidDeltaCRLIndicator is the Delta CRL Indicator extension (RFC 5280
// section 5.2.4): its value is the number of the base CRL the delta
// completes.
var oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}

// Revoked is one entry of a CRL.
type Revoked struct {
	Serial *big.Int
	// At is the revocation date; default an hour before the CRL's
	// ThisUpdate.
	At time.Time
	// Reason is an RFC 5280 reason code (Reason* constants). Unspecified
	// (0) writes no reasonCode extension, as RFC 5280 asks.
	Reason int
}

// CRLOptions describes a CRL. Zero values give a base CRL number 1,
// issued an hour ago, valid for a week, revoking nothing.
type CRLOptions struct {
	Number     int64     // CRL Number extension; default 1
	ThisUpdate time.Time // default an hour ago
	NextUpdate time.Time // default ThisUpdate + 7 days
	Revoked    []Revoked
	// Delta makes a delta CRL completing the base CRL numbered BaseNumber
	// (a critical Delta CRL Indicator extension).
	Delta      bool
	BaseNumber int64
	// SignWith signs with another CA's key while the CRL still names this
	// CA as its issuer (and carries this CA's key identifier): a forged or
	// misfiled CRL.
	SignWith *CA
	// Extra are added to the CRL's extensions as they are.
	Extra []pkix.Extension
}

// CRL makes a DER CRL issued by ca, as ADCS publishes it to a
// cRLDistributionPoint object's certificateRevocationList (base) or
// deltaRevocationList (delta) attribute.
func (ca *CA) CRL(o CRLOptions) ([]byte, error) {
	number := o.Number
	if number == 0 {
		number = 1
	}
	this := o.ThisUpdate
	if this.IsZero() {
		this = time.Now().Add(-time.Hour)
	}
	next := o.NextUpdate
	if next.IsZero() {
		next = this.AddDate(0, 0, 7)
	}
	tmpl := &x509.RevocationList{
		Number:          big.NewInt(number),
		ThisUpdate:      this,
		NextUpdate:      next,
		ExtraExtensions: append([]pkix.Extension(nil), o.Extra...),
	}
	for _, r := range o.Revoked {
		if r.Serial == nil {
			return nil, fmt.Errorf("pkitest: CRL of %q: revoked entry without serial", ca.Cert.Subject.CommonName)
		}
		at := r.At
		if at.IsZero() {
			at = this.Add(-time.Hour)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: at, ReasonCode: r.Reason})
	}
	if o.Delta {
		v, err := asn1.Marshal(big.NewInt(o.BaseNumber))
		if err != nil {
			return nil, fmt.Errorf("pkitest: delta CRL indicator: %w", err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions,
			pkix.Extension{Id: oidDeltaCRLIndicator, Critical: true, Value: v})
	}
	key := ca.Key
	if o.SignWith != nil {
		key = o.SignWith.Key
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, key)
	if err != nil {
		return nil, fmt.Errorf("pkitest: CRL %d of %q: %w", number, ca.Cert.Subject.CommonName, err)
	}
	return der, nil
}
