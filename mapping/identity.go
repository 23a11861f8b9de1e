package mapping

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Identity check modes (Policy.Identity).
const (
	// IdentityMatch: a certificate must name one of the user's identities
	// (RejectIdentityMismatch otherwise), and a certificate naming none
	// is rejected too (RejectNoIdentity): an SKI binding is unique in the
	// tenant, so a certificate on the wrong user hands that user's sign-in
	// to its holder.
	IdentityMatch = "match"
	// IdentityMatchNamed: as match, but a certificate that names no
	// identity at all passes with a warning (CAs that issue logon
	// certificates without e-mail or UPN).
	IdentityMatchNamed = "matchNamed"
	// IdentityOff checks nothing (the configuration warns loudly).
	IdentityOff = "off"
)

// IdentityModes lists the values of policy.identity.
func IdentityModes() []string { return []string{IdentityMatch, IdentityMatchNamed, IdentityOff} }

// Rejection codes of the identity check.
const (
	RejectIdentityMismatch = "identity-mismatch" // names identities, none the user's
	RejectNoIdentity       = "no-identity"       // names no e-mail or UPN (IdentityMatch)
)

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	// oidUPN is Microsoft's userPrincipalName otherName (szOID_NT_PRINCIPAL_NAME).
	oidUPN          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
	oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

// CertificateIdentities lists what c says its holder is called: its
// rfc822Name SANs, its UPN otherName SANs (1.3.6.1.4.1.311.20.2.3) and
// its subject's emailAddress attributes, lower-cased, without duplicates.
func CertificateIdentities(c *x509.Certificate) ([]string, error) {
	var out []string
	add := func(v string) { out = addIdentity(out, v) }
	for _, e := range c.EmailAddresses {
		add(e)
	}
	for _, n := range c.Subject.Names {
		if n.Type.Equal(oidEmailAddress) {
			if s, ok := n.Value.(string); ok {
				add(s)
			}
		}
	}
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		upns, err := upnNames(ext.Value)
		if err != nil {
			return out, fmt.Errorf("subject alternative names: %w", err)
		}
		for _, u := range upns {
			add(u)
		}
	}
	return out, nil
}

// upnNames reads the UPN otherNames of a SubjectAltName extension value.
func upnNames(der []byte) ([]string, error) {
	var names []asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &names); err != nil || len(rest) > 0 {
		return nil, errors.New("not a SEQUENCE OF GeneralName")
	}
	var out []string
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific || n.Tag != 0 || !n.IsCompound {
			continue // not an otherName
		}
		var on struct {
			Type  asn1.ObjectIdentifier
			Value asn1.RawValue `asn1:"explicit,tag:0"`
		}
		if _, err := asn1.UnmarshalWithParams(n.FullBytes, &on, "tag:0"); err != nil {
			return nil, fmt.Errorf("otherName: %w", err)
		}
		if !on.Type.Equal(oidUPN) {
			continue
		}
		var upn string
		if _, err := asn1.UnmarshalWithParams(on.Value.Bytes, &upn, "utf8"); err != nil {
			return nil, fmt.Errorf("UPN otherName is not a UTF8String: %w", err)
		}
		out = append(out, upn)
	}
	return out, nil
}

// UserIdentities are the identities of a directory user a certificate may
// name: mail, userPrincipalName and the smtp: entries of proxyAddresses
// ("SMTP:" and "smtp:" alike), lower-cased.
func UserIdentities(u SourceUser) []string {
	var out []string
	add := func(v string) { out = addIdentity(out, v) }
	add(u.Attr("mail"))
	add(u.Attr("userPrincipalName"))
	for _, p := range strings.Split(u.Attr("proxyAddresses"), "\n") {
		if addr, ok := cutFold(p, "smtp:"); ok {
			add(addr)
		}
	}
	return out
}

// addIdentity appends v, lower-cased and trimmed, unless empty or there.
func addIdentity(out []string, v string) []string {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" || slices.Contains(out, v) {
		return out
	}
	return append(out, v)
}

func cutFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}

// identityProblem says why c may not be published for a user with the
// identities user under mode, or "" when it may; warn is set when c names
// no identity and mode lets it pass.
func identityProblem(c *x509.Certificate, mode string, user []string) (code, reason, warn string) {
	if mode != IdentityMatch && mode != IdentityMatchNamed {
		return "", "", ""
	}
	names, err := CertificateIdentities(c)
	if err != nil {
		return RejectIdentityMismatch, fmt.Sprintf("whom it belongs to cannot be read: %v", err), ""
	}
	if len(names) == 0 {
		if mode == IdentityMatchNamed {
			return "", "", "names no identity (no e-mail or UPN); published under policy.identity: matchNamed"
		}
		return RejectNoIdentity, "certificate names no identity (no e-mail, UPN or subject emailAddress): it cannot be tied to this user (policy.identity: match)", ""
	}
	for _, n := range names {
		if slices.Contains(user, n) {
			return "", "", ""
		}
	}
	mine := strings.Join(user, ", ")
	if mine == "" {
		mine = "none: no mail, userPrincipalName or proxyAddresses"
	}
	return RejectIdentityMismatch, fmt.Sprintf("it names %s, not this user (%s): it belongs to someone else (policy.identity)", strings.Join(names, ", "), mine), ""
}
