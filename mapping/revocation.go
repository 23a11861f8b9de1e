package mapping

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
	"time"
)

// Revocation policy values (Policy.RevocationUnavailable).
const (
	// RevocationKeep accepts a certificate whose CA has no usable CRL, with
	// a warning on the accepted certificate.
	RevocationKeep = "keep"
	// RevocationReject rejects it with RejectRevocationUnknown.
	RevocationReject = "reject"
)

// CRL is one CRL value as read from the directory.
type CRL struct {
	// Source names where the value was read (a DN and attribute), so that
	// a problem tells an admin which object to fix.
	Source string
	DER    []byte
}

// CRLProblem is a CRL that could not be used, or a CA left without a
// usable revocation status. Problems are never fatal to a pass: they are
// for the caller to show, once per pass.
type CRLProblem struct {
	// CA is the subject (RFC 2253) of the CA concerned, or the issuer the
	// CRL names; "" when the value is not a CRL at all.
	CA string
	// Source is the CRL's Source; "" for a CA with no CRL at all.
	Source string
	Reason string
	// Unavailable means the certificates of CA get no revocation status:
	// Policy.RevocationUnavailable decides what becomes of them. Problems
	// without it are informational (a CRL superseded by a usable one, a
	// CRL of a CA certsync does not trust).
	Unavailable bool
}

func (p CRLProblem) String() string {
	s := p.Reason
	if p.Source != "" {
		s = p.Source + ": " + s
	}
	if p.CA != "" {
		s = "CA " + p.CA + ": " + s
	}
	return s
}

// RevocationSet is what the CRLs of the issuing CAs say at one moment:
// for each CA, the revoked serials of its newest base CRL merged with its
// newest applicable delta CRL, or why no such status exists. It is built
// once per pass (or once per CRL lifetime) and is read-only afterwards, so
// evaluations may share it.
type RevocationSet struct {
	byCA       map[caKey]*caRevocation
	problems   []CRLProblem
	nextUpdate time.Time
	refreshAt  time.Time
}

// caKey identifies a CA by subject and key: a CRL covers the certificates
// its issuer's key signed (a renewed CA with a new key publishes another
// CRL), and renewed CA certificates that keep the key share one CRL.
type caKey [sha256.Size]byte

func keyOf(ca *x509.Certificate) caKey {
	h := sha256.New()
	h.Write(ca.RawSubject)
	h.Write(ca.RawSubjectPublicKeyInfo)
	var k caKey
	h.Sum(k[:0])
	return k
}

// caRevocation is the status of one CA.
type caRevocation struct {
	name string
	// unavailable says why the CA has no usable status; "" when it has.
	unavailable string
	revoked     map[string]revocation // by serial (decimal)
}

type revocation struct {
	at     time.Time
	reason int
	crl    string // "CRL 7" or "delta CRL 8", for the reason text
}

// parsedCRL is a CRL whose signature verified against a configured CA.
type parsedCRL struct {
	source      string
	ca          caKey
	rl          *x509.RevocationList
	number      *big.Int // nil when the CRL has no number
	delta       bool
	baseNumber  *big.Int  // delta only
	nextPublish time.Time // Microsoft's Next CRL Publish, zero when absent
}

func (c *parsedCRL) label() string {
	kind := "CRL"
	if c.delta {
		kind = "delta CRL"
	}
	if c.number == nil {
		return kind + " (unnumbered)"
	}
	return kind + " " + c.number.String()
}

// OIDs of the CRL extensions certsync reads (RFC 5280 section 5.2, and
// Microsoft's Next CRL Publish, which ADCS writes).
var (
	oidAuthorityKeyID       = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber            = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRLIndicator    = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDistPoint     = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidMicrosoftNextPublish = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 21, 4}
)

// reasonRemoveFromCRL in a delta CRL lifts a certificateHold.
const reasonRemoveFromCRL = 8

// NewRevocationSet verifies crls against the issuing CAs cas and merges
// each CA's newest base CRL with its newest delta CRL, as of now.
//
// A CRL is used only when its signature verifies against a CA of cas that
// it names (issuer name, and key identifier when both carry one). Values
// that are not CRLs, CRLs no CA of cas signed, CRLs with extensions
// certsync does not understand, and stale CRLs (past nextUpdate) become
// problems; every CA of cas left without a usable status gets a problem
// with Unavailable set. Empty values and the single zero byte ADCS is
// believed to leave in an attribute it has not published to are not CRLs
// and are skipped without a problem.
func NewRevocationSet(crls []CRL, cas []*x509.Certificate, now time.Time) (*RevocationSet, []CRLProblem) {
	rs := &RevocationSet{byCA: map[caKey]*caRevocation{}}
	var order []caKey
	caCert := map[caKey]*x509.Certificate{}
	for _, ca := range cas {
		if ca == nil {
			continue
		}
		k := keyOf(ca)
		if _, dup := caCert[k]; !dup {
			caCert[k] = ca
			order = append(order, k)
		}
	}
	perCA := map[caKey][]*parsedCRL{}
	failed := map[caKey]int{} // CRLs naming the CA that could not be used
	for _, in := range crls {
		if len(in.DER) == 0 || bytes.Equal(in.DER, []byte{0}) {
			continue
		}
		c, k, p := parseCRL(in, cas)
		if p != nil {
			rs.problems = append(rs.problems, *p)
			if k != nil {
				failed[*k]++
			}
			continue
		}
		perCA[c.ca] = append(perCA[c.ca], c)
	}
	for _, k := range order {
		ca := caCert[k]
		st := rs.merge(ca.Subject.String(), perCA[k], now)
		if st.unavailable == "" && len(perCA[k]) == 0 {
			st.unavailable = "no CRL of this CA was found"
			if failed[k] > 0 {
				st.unavailable = fmt.Sprintf("none of its %d CRLs could be used", failed[k])
			}
		}
		if st.unavailable != "" {
			rs.problems = append(rs.problems, CRLProblem{CA: st.name, Reason: st.unavailable, Unavailable: true})
		}
		rs.byCA[k] = st
	}
	return rs, rs.problems
}

// parseCRL parses and verifies one value. On failure it returns the
// problem and, when the CRL names a configured CA, that CA's key.
func parseCRL(in CRL, cas []*x509.Certificate) (*parsedCRL, *caKey, *CRLProblem) {
	rl, err := x509.ParseRevocationList(in.DER)
	if err != nil {
		return nil, nil, &CRLProblem{Source: in.Source, Reason: fmt.Sprintf("not a CRL: %v", err)}
	}
	issuer := rl.Issuer.String()
	var named []*x509.Certificate
	for _, ca := range cas {
		if ca == nil || !bytes.Equal(ca.RawSubject, rl.RawIssuer) {
			continue
		}
		if len(rl.AuthorityKeyId) > 0 && len(ca.SubjectKeyId) > 0 && !bytes.Equal(rl.AuthorityKeyId, ca.SubjectKeyId) {
			continue
		}
		named = append(named, ca)
	}
	if len(named) == 0 {
		return nil, nil, &CRLProblem{CA: issuer, Source: in.Source, Reason: fmt.Sprintf(
			"issued by %s (key identifier %s), which is not a configured issuing CA; not used", issuer, hexOrNone(rl.AuthorityKeyId))}
	}
	k := keyOf(named[0])
	var signer *x509.Certificate
	var sigErr error
	for _, ca := range named {
		if sigErr = rl.CheckSignatureFrom(ca); sigErr == nil {
			signer = ca
			break
		}
	}
	if signer == nil {
		return nil, &k, &CRLProblem{CA: issuer, Source: in.Source, Reason: fmt.Sprintf(
			"signature does not verify against the CA it names (key identifier %s): %v", hexOrNone(named[0].SubjectKeyId), sigErr)}
	}
	k = keyOf(signer)
	c := &parsedCRL{source: in.Source, ca: k, rl: rl, number: rl.Number}
	for _, e := range rl.Extensions {
		switch {
		case e.Id.Equal(oidDeltaCRLIndicator):
			var n *big.Int
			if rest, err := asn1.Unmarshal(e.Value, &n); err != nil || len(rest) > 0 || n.Sign() < 0 {
				return nil, &k, &CRLProblem{CA: issuer, Source: in.Source, Reason: "malformed delta CRL indicator"}
			}
			c.delta, c.baseNumber = true, n
		case e.Id.Equal(oidIssuingDistPoint):
			if why := idpScope(e.Value); why != "" {
				return nil, &k, &CRLProblem{CA: issuer, Source: in.Source, Reason: why}
			}
		case e.Id.Equal(oidMicrosoftNextPublish):
			var t time.Time
			if _, err := asn1.Unmarshal(e.Value, &t); err == nil {
				c.nextPublish = t
			}
		case e.Id.Equal(oidAuthorityKeyID), e.Id.Equal(oidCRLNumber):
			// Read by crypto/x509.
		case e.Critical:
			// RFC 5280 section 5.2: a CRL with a critical extension the
			// reader does not process must not be used.
			return nil, &k, &CRLProblem{CA: issuer, Source: in.Source, Reason: fmt.Sprintf(
				"has the critical extension %s, which certsync does not process; not used", e.Id)}
		}
	}
	if c.delta && c.number == nil {
		return nil, &k, &CRLProblem{CA: issuer, Source: in.Source, Reason: "delta CRL without a CRL number; not used"}
	}
	return c, &k, nil
}

// idpScope says why a CRL with this Issuing Distribution Point extension
// cannot be used as the complete list of a CA's revoked end-entity
// certificates, or "" when it can. A CRL limited to user certificates, or
// naming its distribution point, still lists every revoked user
// certificate of its scope; one limited to CA or attribute certificates,
// to some reasons, or an indirect CRL does not.
func idpScope(v []byte) string {
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(v, &seq); err != nil || len(rest) > 0 || seq.Tag != asn1.TagSequence {
		return "malformed issuing distribution point extension; not used"
	}
	for rest := seq.Bytes; len(rest) > 0; {
		var f asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &f); err != nil || f.Class != asn1.ClassContextSpecific {
			return "malformed issuing distribution point extension; not used"
		}
		set := len(f.Bytes) == 1 && f.Bytes[0] != 0
		switch {
		case f.Tag == 2 && set:
			return "covers CA certificates only (issuing distribution point); not used"
		case f.Tag == 3:
			return "covers some revocation reasons only (issuing distribution point); not used"
		case f.Tag == 4 && set:
			return "is an indirect CRL, which certsync does not support; not used"
		case f.Tag == 5 && set:
			return "covers attribute certificates only (issuing distribution point); not used"
		}
	}
	return ""
}

// merge picks the newest base CRL of one CA and the newest delta CRL that
// completes it, and records the CRLs it used for NextUpdate.
func (rs *RevocationSet) merge(name string, crls []*parsedCRL, now time.Time) *caRevocation {
	st := &caRevocation{name: name}
	var base, delta *parsedCRL
	for _, c := range crls {
		switch {
		case !c.delta && (base == nil || newer(c, base)):
			base = c
		case c.delta && (delta == nil || newer(c, delta)):
			delta = c
		}
	}
	switch {
	case base == nil && delta != nil:
		st.unavailable = fmt.Sprintf("only a delta CRL (%s) was found, no base CRL", delta.source)
		return st
	case base == nil:
		return st // the caller names the absence
	case stale(base, now):
		st.unavailable = fmt.Sprintf("newest base %s (%s) is past its nextUpdate %s", base.label(), base.source, utc(base.rl.NextUpdate))
		return st
	}
	// A delta no newer than the base repeats what the base already holds.
	if delta != nil && (base.number == nil || delta.number.Cmp(base.number) <= 0) {
		if base.number == nil {
			st.unavailable = fmt.Sprintf("base %s has no CRL number, so %s (%s) cannot be applied to it", base.label(), delta.label(), delta.source)
			return st
		}
		delta = nil
	}
	if delta != nil {
		switch {
		case delta.baseNumber.Cmp(base.number) > 0:
			st.unavailable = fmt.Sprintf("%s (%s) completes base CRL %s, but the newest base found is %s (%s)",
				delta.label(), delta.source, delta.baseNumber, base.label(), base.source)
			return st
		case stale(delta, now):
			st.unavailable = fmt.Sprintf("newest %s (%s) is past its nextUpdate %s", delta.label(), delta.source, utc(delta.rl.NextUpdate))
			return st
		}
	}
	st.revoked = map[string]revocation{}
	for _, c := range []*parsedCRL{base, delta} {
		if c == nil {
			continue
		}
		for _, e := range c.rl.RevokedCertificateEntries {
			if e.SerialNumber == nil {
				continue
			}
			serial := e.SerialNumber.String()
			if e.ReasonCode == reasonRemoveFromCRL {
				delete(st.revoked, serial)
				continue
			}
			st.revoked[serial] = revocation{at: e.RevocationTime, reason: e.ReasonCode, crl: c.label()}
		}
		rs.used(c)
	}
	return st
}

// newer orders CRLs of one kind: higher number first, then later
// thisUpdate (an unnumbered CRL loses to any numbered one).
func newer(a, b *parsedCRL) bool {
	switch {
	case a.number != nil && b.number == nil:
		return true
	case a.number == nil && b.number != nil:
		return false
	case a.number != nil:
		if c := a.number.Cmp(b.number); c != 0 {
			return c > 0
		}
	}
	return a.rl.ThisUpdate.After(b.rl.ThisUpdate)
}

// stale: past nextUpdate. A CRL without nextUpdate (RFC 5280 requires it)
// never goes stale by itself.
func stale(c *parsedCRL, now time.Time) bool {
	return !c.rl.NextUpdate.IsZero() && now.After(c.rl.NextUpdate)
}

func (rs *RevocationSet) used(c *parsedCRL) {
	next := c.rl.NextUpdate
	if next.IsZero() {
		return
	}
	if rs.nextUpdate.IsZero() || next.Before(rs.nextUpdate) {
		rs.nextUpdate = next
	}
	refresh := next
	if !c.nextPublish.IsZero() && c.nextPublish.Before(next) {
		refresh = c.nextPublish
	}
	if rs.refreshAt.IsZero() || refresh.Before(rs.refreshAt) {
		rs.refreshAt = refresh
	}
}

// NextUpdate is the earliest nextUpdate of the CRLs in use: until then the
// set stays valid and the CRLs need not be read again. Zero when no CRL is
// in use. While Problems is not empty, reading again every pass is how a
// republished CRL is noticed.
func (rs *RevocationSet) NextUpdate() time.Time {
	if rs == nil {
		return time.Time{}
	}
	return rs.nextUpdate
}

// RefreshAt is when the CRLs are worth reading again: the earliest
// "Next CRL Publish" time ADCS writes into its CRLs (when it plans to
// publish the next one, usually well before nextUpdate), else NextUpdate.
func (rs *RevocationSet) RefreshAt() time.Time {
	if rs == nil {
		return time.Time{}
	}
	return rs.refreshAt
}

// Problems returns the problems NewRevocationSet reported.
func (rs *RevocationSet) Problems() []CRLProblem {
	if rs == nil {
		return nil
	}
	return rs.problems
}

// revocationVerdict is the status of one certificate.
type revocationVerdict struct {
	revoked     bool
	unavailable string // why there is no status; "" when there is one
	entry       revocation
}

// status looks up c, issued by issuer (a configured CA that verified c's
// signature).
func (rs *RevocationSet) status(c, issuer *x509.Certificate) revocationVerdict {
	if rs == nil {
		return revocationVerdict{unavailable: "no CRLs were loaded"}
	}
	st, ok := rs.byCA[keyOf(issuer)]
	switch {
	case !ok:
		return revocationVerdict{unavailable: "no CRL of " + issuer.Subject.String() + " was found"}
	case st.unavailable != "":
		return revocationVerdict{unavailable: "CA " + st.name + ": " + st.unavailable}
	case c.SerialNumber == nil:
		return revocationVerdict{}
	}
	e, revoked := st.revoked[c.SerialNumber.String()]
	return revocationVerdict{revoked: revoked, entry: e}
}

// CRLReasonName is the RFC 5280 name of a CRL reason code
// ("keyCompromise"), or its number when unknown.
func CRLReasonName(code int) string {
	names := [...]string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
		"superseded", "cessationOfOperation", "certificateHold", "", "removeFromCRL",
		"privilegeWithdrawn", "aACompromise"}
	if code >= 0 && code < len(names) && names[code] != "" {
		return names[code]
	}
	return fmt.Sprintf("reason %d", code)
}

func hexOrNone(b []byte) string {
	if len(b) == 0 {
		return "none"
	}
	return hex.EncodeToString(b)
}

func utc(t time.Time) string { return t.UTC().Format(time.RFC3339) }
