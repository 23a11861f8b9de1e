package mapping

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"regexp"
)

// The SID extension Active Directory Certificate Services adds to the
// certificates it issues from online templates since KB5014754 (May 2022):
// szOID_NTDS_CA_SECURITY_EXT, a GeneralNames holding one otherName of type
// szOID_NTDS_OBJECTSID whose value is the account's SID as text
// ("S-1-5-21-…") in an OCTET STRING. A domain controller binds such a
// certificate to the account with that objectSid and no other, so a
// certificate whose SID names another account must not be published for
// this one, whatever the target.
//
// Source: KB5014754 "Certificate-based authentication changes on Windows
// domain controllers" (learn.microsoft.com/troubleshoot/windows-server/
// windows-security/kb5014754-certificate-based-authentication-changes-on-
// windows-domain-controllers), section "Certificate SID extension".
var (
	oidNTDSCASecurityExt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2}
	oidNTDSObjectSID     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2, 1}
)

// RejectSIDMismatch: the certificate's SID extension names another
// account than the user's objectSid (or cannot be read).
const RejectSIDMismatch = "sid-mismatch"

// sidText is a SID as Windows writes it: S-1-<authority>(-<sub>)*.
var sidText = regexp.MustCompile(`^S-1-[0-9]+(-[0-9]+){0,15}$`)

// otherName is GeneralName's otherName without its [0] tag.
type otherName struct {
	TypeID asn1.ObjectIdentifier
	Value  asn1.RawValue `asn1:"tag:0,explicit"`
}

// CertificateSID returns the SID c's SID extension binds it to; ok is
// false when c has no such extension. err says why an extension present
// could not be read.
func CertificateSID(c *x509.Certificate) (sid string, ok bool, err error) {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidNTDSCASecurityExt) {
			continue
		}
		sid, err := parseSIDExtension(ext.Value)
		return sid, true, err
	}
	return "", false, nil
}

func parseSIDExtension(der []byte) (string, error) {
	var names []asn1.RawValue
	rest, err := asn1.Unmarshal(der, &names)
	if err != nil {
		return "", fmt.Errorf("SID extension: %w", err)
	}
	if len(rest) > 0 {
		return "", errors.New("SID extension: trailing data")
	}
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific || n.Tag != 0 || !n.IsCompound {
			continue
		}
		var on otherName
		if rest, err := asn1.UnmarshalWithParams(n.FullBytes, &on, "tag:0"); err != nil || len(rest) > 0 {
			return "", fmt.Errorf("SID extension: otherName: %v", err)
		}
		if !on.TypeID.Equal(oidNTDSObjectSID) {
			continue
		}
		var text []byte
		if rest, err := asn1.Unmarshal(on.Value.Bytes, &text); err != nil || len(rest) > 0 {
			return "", fmt.Errorf("SID extension: value is not an OCTET STRING: %v", err)
		}
		if !sidText.Match(text) {
			return "", fmt.Errorf("SID extension: %q is not a SID", text)
		}
		return string(text), nil
	}
	return "", errors.New("SID extension: no objectSid name in it")
}

// sidProblem says why c may not be published for the account whose
// objectSid is account, or "" when it may: no SID extension, or one naming
// that account. account "" (a directory without objectSid) checks nothing.
func sidProblem(c *x509.Certificate, account string) string {
	if account == "" {
		return ""
	}
	sid, ok, err := CertificateSID(c)
	switch {
	case !ok:
		return ""
	case err != nil:
		return fmt.Sprintf("its SID extension (%s) cannot be read, so the account it belongs to is unknown: %v", oidNTDSCASecurityExt, err)
	case sid != account:
		return fmt.Sprintf("its SID extension binds it to the account %s, not to this user (objectSid %s): a domain controller would refuse it for this user", sid, account)
	}
	return ""
}
