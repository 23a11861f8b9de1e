package mapping

import (
	"crypto/x509"
	"strings"
	"time"
)

// Canonical names of the directory attributes certsync reads certificates
// from. Attribute options (";binary") are never part of these names.
const (
	AttrUserCertificate      = "userCertificate"
	AttrUserSMIMECertificate = "userSMIMECertificate"
)

// SourceUser is one directory entry as the source read it.
type SourceUser struct {
	// Anchor is the immutable key of the user in the state file: objectGUID
	// as standard base64 of its 16 bytes (the cloud's onPremisesImmutableId),
	// entryUUID as its text. Never a mutable attribute such as mail.
	Anchor string
	DN     string
	// Attributes holds single-valued identity attributes keyed by their
	// lower-cased LDAP name ("mail", "userprincipalname", "samaccountname",
	// "uid", "objectguid", ...). Binary ones (objectGUID) are base64.
	Attributes map[string]string
	// Values are the raw certificate values, in directory order.
	Values []RawValue
	// Unread are certificate values the source saw but did not read
	// (larger than its limits). What they hold is unknown: a user with any
	// is changed in no way, never taken as without those certificates.
	Unread []UnreadValue
}

// UnreadValue is a certificate value a source left unread, and why.
type UnreadValue struct {
	Attribute string
	Size      int    // bytes
	Reason    string // names the attribute, the size and the limit
}

// Attr returns the identity attribute name (case-insensitive) or "".
func (u SourceUser) Attr(name string) string {
	return u.Attributes[strings.ToLower(name)]
}

// Name is how people recognise the user: mail, else userPrincipalName,
// else uid or sAMAccountName, else the DN.
func (u SourceUser) Name() string {
	for _, a := range []string{"mail", "userprincipalname", "uid", "samaccountname"} {
		if v := u.Attributes[a]; v != "" {
			return v
		}
	}
	return u.DN
}

// RawValue is one value of a certificate attribute, exactly as read.
type RawValue struct {
	Attribute string // AttrUserCertificate or AttrUserSMIMECertificate
	Data      []byte
}

// Policy decides which certificates may be published.
type Policy struct {
	// IssuingCAs are the trusted issuing CAs and the intermediates between
	// them. Every one of them is a trust anchor (a trusted issuing CA need
	// not be a root): a certificate is trusted when its signature chain,
	// built from this set only, reaches any certificate of the set.
	IssuingCAs []*x509.Certificate
	// RequireSKI rejects certificates without a Subject Key Identifier.
	RequireSKI bool
	// ExtKeyUsages: a certificate needs at least one of them (or the "any"
	// EKU); empty means no EKU check.
	ExtKeyUsages []x509.ExtKeyUsage
	// SkipExpired rejects certificates outside their validity period.
	SkipExpired bool
	// MaxCertificates caps the accepted set (newest NotBefore first);
	// 0 means no cap.
	MaxCertificates int
	// CheckRevocation rejects certificates their issuing CA has revoked,
	// as Revocation says.
	CheckRevocation bool
	// Revocation is what the issuing CAs' CRLs say (NewRevocationSet);
	// nil with CheckRevocation means no CRL could be read at all.
	Revocation *RevocationSet
	// RevocationUnavailable decides about a certificate whose issuing CA
	// has no usable CRL: RevocationKeep accepts it with a warning,
	// anything else (RevocationReject) rejects it as
	// RejectRevocationUnknown.
	RevocationUnavailable string
	// AccountSID is the objectSid ("S-1-5-21-…") of the user being
	// evaluated, set per user by the caller; a certificate whose SID
	// extension names another account is rejected (RejectSIDMismatch).
	// "" checks nothing. Not part of the policy's fingerprint.
	AccountSID string `json:"-"`
	// Identity is the identity check (IdentityMatch, IdentityMatchNamed,
	// IdentityOff; "" is off): a certificate must name one of
	// AccountIdentities (identity.go).
	Identity string
	// AccountIdentities are the user's identities (UserIdentities), set
	// per user by the caller. Not part of the policy's fingerprint.
	AccountIdentities []string `json:"-"`
}

// Certificate is one accepted certificate.
type Certificate struct {
	Cert   *x509.Certificate
	SHA256 string // lower-case hex of the DER
	// Attributes lists the source attributes the certificate was found in,
	// without duplicates, in first-seen order.
	Attributes []string
	// Warnings are checks that could not be made and did not reject the
	// certificate (a CA without a usable CRL under RevocationKeep), for
	// people to see next to it.
	Warnings []string
}

// Rejection codes: stable strings for scripts (JSON output) and tests.
const (
	RejectMalformed   = "malformed"      // neither DER nor PKCS#7 with certificates
	RejectNoSKI       = "no-ski"         // RequireSKI and no Subject Key Identifier
	RejectUntrusted   = "untrusted"      // not signed by a trusted issuing CA
	RejectExpired     = "expired"        // NotAfter in the past (SkipExpired)
	RejectNotYetValid = "not-yet-valid"  // NotBefore in the future (SkipExpired)
	RejectEKU         = "eku"            // none of the policy's EKUs
	RejectOverLimit   = "over-limit"     // valid, but beyond MaxCertificates
	RejectCA          = "ca-certificate" // a CA certificate, not an end-entity one
	RejectRevoked     = "revoked"        // listed in its issuing CA's CRL (CheckRevocation)
	// RejectRevocationUnknown: the issuing CA has no usable CRL and
	// RevocationUnavailable is not RevocationKeep.
	RejectRevocationUnknown = "revocation-unknown"
	// RejectTooLarge: the source did not read the value (SourceUser.Unread).
	RejectTooLarge = "too-large"
)

// Rejection is one certificate (or undecodable value) not published, and why.
type Rejection struct {
	Attribute string // source attribute of the value
	Subject   string // RFC 2253 subject, "" when undecodable
	Serial    string // upper-case hex, "" when undecodable
	SHA256    string // of the certificate DER, or of the raw value when undecodable
	Code      string // one of the Reject* constants
	Reason    string // a sentence for people, naming the cause
	// NotBefore is the certificate's, zero when undecodable: a
	// not-yet-valid certificate's verdict changes then.
	NotBefore time.Time
}

// Evaluation is the verdict on all certificate values of one user.
type Evaluation struct {
	Accepted []Certificate // newest NotBefore first; ties by SHA256
	Rejected []Rejection   // in value order
	// Values are the directory values whose every end-entity certificate
	// is in Accepted, as read (newest first); Withheld the others.
	Values   []Value
	Withheld []Withheld
	// OtherPurpose are the certificates that pass every check but the
	// policy's extended key usage (ExtKeyUsages), newest first: a target
	// with a purpose of its own (logon, for altSecurityIdentities) judges
	// them itself. They are in Rejected too, with code RejectEKU.
	OtherPurpose []Certificate
	// Until is the first instant after the evaluation's at which the same
	// values could be judged differently under the same policy (a
	// certificate's or a trusted CA's validity begins or ends, the CRLs
	// are due); zero when there is none. Before it, the same values, policy
	// and CRLs give the same evaluation.
	Until time.Time
}

// Binding kinds for Entra ID certificateUserIds.
type BindingKind string

const (
	BindingSKI           BindingKind = "SKI"           // X509:<SKI> + SKI hex
	BindingSHA1PublicKey BindingKind = "SHA1-PUKEY"    // X509:<SHA1-PUKEY> + SHA-1 hex
	BindingIssuerSerial  BindingKind = "ISSUER-SERIAL" // X509:<I>issuer<SR>serial
)

// TargetChange is what one cloud target (one multi-valued attribute) of one
// user must become, computed by Diff.
type TargetChange struct {
	Add    []string // values to add, in priority order
	Remove []string // values certsync published and no longer wants, present now
	// Final is the whole collection to write: current values minus Remove,
	// plus Add. Targets that replace the whole collection write it as is.
	Final []string
	// Owned is what certsync owns once Final is written: values it
	// published before and still wants, plus Add.
	Owned []string
	// Unowned are current values certsync did not publish; they are kept.
	Unowned []string
	// Dropped are wanted values left out because the target's limit was
	// reached (current unowned values take their places first).
	Dropped []string
}

// Changed reports whether the cloud must be written.
func (c TargetChange) Changed() bool { return len(c.Add) > 0 || len(c.Remove) > 0 }
