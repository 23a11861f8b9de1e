package mapping

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"
)

// Logon fitness: whether a domain controller takes a certificate for a
// logon (smart card, PKINIT, Schannel), judged on its extended key usage
// alone. The altSecurityIdentities target maps only such certificates,
// whatever policy.extendedKeyUsages admits for the other targets: a
// smart-card certificate need not be fit for S/MIME, nor an S/MIME one
// for logon.
//
// What the KDC accepts (sources read 2026):
//   - Samba's PKINIT tests, written against Windows
//     (samba-team/samba python/samba/tests/krb5/pkinit_tests.py and
//     pkinit_certificate_mapping_tests.py, create_certificate): "Windows
//     doesn't require this extension to be present either; but if it is,
//     Windows will not accept the certificate unless either client
//     authentication or smartcard logon is specified, returning
//     KDC_ERR_INCONSISTENT_KEY_PURPOSE otherwise."
//   - SpecterOps, "Certified Pre-Owned" (2021), the templates that allow
//     domain authentication: Client Authentication (1.3.6.1.5.5.7.3.2),
//     PKINIT Client Authentication (1.3.6.1.5.2.3.4, RFC 4556's
//     id-pkinit-KPClientAuth), Smart Card Logon (1.3.6.1.4.1.311.20.2.2),
//     Any Purpose (2.5.29.37.0), or no EKU at all (SubCA).
//
// certsync maps the first three. It refuses a certificate with the Any
// Purpose EKU or without the extension although the KDC would take it: a
// mapping grants a logon as the user, and such certificates come from
// templates whose issuer never said "logon" (the ESC2 pattern of
// Certified Pre-Owned); an admin who wants them mapped can still write
// the value by hand, and certsync keeps it.
var (
	oidEKUClientAuth       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	oidEKUSmartCardLogon   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
	oidEKUPKINITClientAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 2, 3, 4}
)

// logonEKUs are the extended key usages fit for logon, with the names the
// report shows.
func logonEKUs() []struct {
	name string
	oid  asn1.ObjectIdentifier
} {
	return []struct {
		name string
		oid  asn1.ObjectIdentifier
	}{
		{"clientAuth", oidEKUClientAuth},
		{"smartCardLogon", oidEKUSmartCardLogon},
		{"pkinitClientAuth", oidEKUPKINITClientAuth},
	}
}

// FitForLogon reports whether c's extended key usage makes it fit for
// logon (LogonPurpose, without the words).
func FitForLogon(c *x509.Certificate) bool {
	if slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return true
	}
	return slices.ContainsFunc(c.UnknownExtKeyUsage, func(o asn1.ObjectIdentifier) bool {
		return o.Equal(oidEKUSmartCardLogon) || o.Equal(oidEKUPKINITClientAuth)
	})
}

// LogonPurpose names the extended key usages of c that make it fit for
// logon ("smartCardLogon", "clientAuth, smartCardLogon"), or returns
// ok false with the reason it is not.
func LogonPurpose(c *x509.Certificate) (purpose string, ok bool) {
	var fit, want []string
	for _, e := range logonEKUs() {
		want = append(want, e.name)
		if slices.ContainsFunc(certEKUs(c), func(o asn1.ObjectIdentifier) bool { return o.Equal(e.oid) }) {
			fit = append(fit, e.name)
		}
	}
	if len(fit) > 0 {
		return strings.Join(fit, ", "), true
	}
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return fmt.Sprintf("has no extended key usage; a logon mapping needs one of %s", strings.Join(want, ", ")), false
	}
	have := ekuNames(c.ExtKeyUsage)
	for _, oid := range c.UnknownExtKeyUsage {
		if have != "" {
			have += ", "
		}
		have += oid.String()
	}
	return fmt.Sprintf("extended key usage %s has none of %s: not fit for logon", have, strings.Join(want, ", ")), false
}

// certEKUs lists every extended key usage of c as an OID, crypto/x509's
// known ones included.
func certEKUs(c *x509.Certificate) []asn1.ObjectIdentifier {
	out := slices.Clone(c.UnknownExtKeyUsage)
	for _, u := range c.ExtKeyUsage {
		if oid, ok := ekuOID(u); ok {
			out = append(out, oid)
		}
	}
	return out
}

// ekuOID is the OID of the crypto/x509 EKUs that matter for logon.
func ekuOID(u x509.ExtKeyUsage) (asn1.ObjectIdentifier, bool) {
	if u == x509.ExtKeyUsageClientAuth {
		return oidEKUClientAuth, true
	}
	return nil, false
}
