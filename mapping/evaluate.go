package mapping

import (
	"cmp"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Evaluate decodes and checks every certificate value of one user against
// the policy and selects what may be published. It never fails: every
// value ends up accepted or rejected with a reason an admin can act on.
//
// A certificate is judged once, whatever value carried it: the same
// certificate found in both attributes, or as DER and inside a PKCS#7, is
// accepted once (its Attributes name every source) or rejected once per
// source attribute. The CA certificates of the user's PKCS#7 values are
// untrusted intermediates for every one of the user's certificates (real
// Outlook bags carry the issuing CA, admins trust the root); only
// p.IssuingCAs are trust anchors. A certificate of a bag that does not
// parse is rejected on its own; its siblings are judged.
//
// Values lists the directory values whose every end-entity certificate
// was accepted, as read, for targets that publish values verbatim; Withheld
// says why the others are not (see values.go).
//
// Rejections come in value order, then the over-limit ones in priority
// order. Accepted, Rejected, Values and Withheld are nil when empty.
func Evaluate(values []RawValue, p Policy, now time.Time) Evaluation {
	return EvaluateRemembering(values, p, now, nil)
}

// EvaluateRemembering is Evaluate with a memo of verified signature chains
// (chains.go): the same verdicts, with fewer signature checks. A nil memo
// verifies every time.
func EvaluateRemembering(values []RawValue, p Policy, now time.Time, memo ChainMemo) Evaluation {
	decs := make([]decodeResult, len(values))
	var chain []*x509.Certificate
	for i, v := range values {
		decs[i].d, decs[i].err = decodeValue(v.Data)
		chain = append(chain, decs[i].d.chain...)
	}
	ch := newChecker(p, now, chain)
	ch.memo = memo
	var ev Evaluation
	acceptedAt := map[string]int{}   // SHA-256 -> index in ev.Accepted
	otherAt := map[string]int{}      // SHA-256 -> index in ev.OtherPurpose
	verdicts := map[string]verdict{} // SHA-256 -> verdict
	seen := map[rejectionKey]bool{}
	reject := func(r Rejection) {
		k := rejectionKey{r.SHA256, r.Attribute}
		if seen[k] {
			return
		}
		seen[k] = true
		ev.Rejected = append(ev.Rejected, r)
	}

	for i, v := range values {
		if err := decs[i].err; err != nil {
			reject(Rejection{
				Attribute: v.Attribute,
				SHA256:    sha256Hex(v.Data),
				Code:      RejectMalformed,
				Reason:    err.Error(),
			})
			continue
		}
		for _, b := range decs[i].d.broken {
			reject(brokenRejection(v.Attribute, b))
		}
		for _, c := range decs[i].d.endEntity {
			sum := sha256Hex(c.Raw)
			vd, judged := verdicts[sum]
			if !judged {
				vd = ch.check(c, sum)
				verdicts[sum] = vd
			}
			if cs := vd.causes; len(cs) > 0 {
				reject(newRejection(v.Attribute, c, sum, cs[0].code, joinReasons(cs)))
				if len(cs) == 1 && cs[0].code == RejectEKU {
					addCertificate(&ev.OtherPurpose, otherAt, c, sum, v.Attribute, vd.warnings)
				}
				continue
			}
			addCertificate(&ev.Accepted, acceptedAt, c, sum, v.Attribute, vd.warnings)
		}
	}

	SortNewestFirst(ev.Accepted)
	SortNewestFirst(ev.OtherPurpose)
	if limit := p.MaxCertificates; limit > 0 && len(ev.Accepted) > limit {
		reason := fmt.Sprintf("valid, but only the %d newest certificates are published (policy.maxCertificates)", limit)
		for _, c := range ev.Accepted[limit:] {
			for _, a := range c.Attributes {
				reject(newRejection(a, c.Cert, c.SHA256, RejectOverLimit, reason))
			}
		}
		ev.Accepted = slices.Clip(ev.Accepted[:limit])
	}
	ev.Values, ev.Withheld = acceptedValues(values, decs, ev, verdicts)
	ev.Until = holdsUntil(decs, p, now)
	return ev
}

// holdsUntil is the first instant after now at which the same values
// could be judged differently under the same policy: a certificate of
// the user's values or a trusted CA entering or leaving its validity, or
// the CRLs' nextUpdate. Zero: no such instant.
func holdsUntil(decs []decodeResult, p Policy, now time.Time) time.Time {
	var until time.Time
	boundary := func(t time.Time) {
		if t.After(now) && (until.IsZero() || t.Before(until)) {
			until = t
		}
	}
	validity := func(c *x509.Certificate) {
		boundary(c.NotBefore)
		// Checks treat now.After(NotAfter) as expired: the verdict
		// changes just after NotAfter.
		boundary(c.NotAfter.Add(time.Nanosecond))
	}
	for _, d := range decs {
		for _, c := range d.d.endEntity {
			validity(c)
		}
		for _, c := range d.d.chain {
			validity(c)
		}
	}
	for _, c := range p.IssuingCAs {
		validity(c)
	}
	if p.CheckRevocation {
		boundary(p.Revocation.NextUpdate())
	}
	return until
}

// addCertificate adds c (found in attr) to list, or attr to c's entry
// there; at indexes list by SHA-256.
func addCertificate(list *[]Certificate, at map[string]int, c *x509.Certificate, sum, attr string, warnings []string) {
	if i, ok := at[sum]; ok {
		if !slices.Contains((*list)[i].Attributes, attr) {
			(*list)[i].Attributes = append((*list)[i].Attributes, attr)
		}
		return
	}
	at[sum] = len(*list)
	*list = append(*list, Certificate{Cert: c, SHA256: sum, Attributes: []string{attr}, Warnings: warnings})
}

// SortNewestFirst orders certificates by NotBefore, newest first, ties by
// SHA-256: the order targets prefer them in.
func SortNewestFirst(certs []Certificate) {
	slices.SortFunc(certs, func(a, b Certificate) int {
		if c := b.Cert.NotBefore.Compare(a.Cert.NotBefore); c != 0 {
			return c // newest first
		}
		return cmp.Compare(a.SHA256, b.SHA256)
	})
}

type rejectionKey struct{ sha256, attribute string }

// cause is one failed check: its Reject* code and a clause for people.
type cause struct{ code, reason string }

// verdict is the judgement of one certificate: no causes means it may be
// published, with its warnings.
type verdict struct {
	causes   []cause
	warnings []string
}

func joinReasons(cs []cause) string {
	rs := make([]string, len(cs))
	for i, c := range cs {
		rs[i] = c.reason
	}
	return strings.Join(rs, "; ")
}

func newRejection(attr string, c *x509.Certificate, sum, code, reason string) Rejection {
	return Rejection{
		Attribute: attr,
		Subject:   c.Subject.String(),
		Serial:    serialHex(c),
		SHA256:    sum,
		Code:      code,
		Reason:    reason,
		NotBefore: c.NotBefore,
	}
}

// serialHex is the serial as people read it (certutil, openssl): upper-case
// big-endian hex without separators.
func serialHex(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	return fmt.Sprintf("%X", c.SerialNumber)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checker holds what is shared by every certificate of one Evaluate call.
type checker struct {
	p     Policy
	now   time.Time
	roots *x509.CertPool
	// intermediates are the CA certificates of the user's bags (nil when
	// none); anchors and chain list the roots and intermediates for the
	// SHA-1 diagnosis.
	intermediates  *x509.CertPool
	anchors, chain []*x509.Certificate
	anchorSums     [][sha256.Size]byte // of anchors, made when a remembered chain is checked
	memo           ChainMemo           // nil: verify every time
}

func newChecker(p Policy, now time.Time, chain []*x509.Certificate) *checker {
	// Every listed CA is a trust anchor: admins list the CAs that issue
	// user certificates, which are usually intermediates, and a chain need
	// not reach a self-signed root. Listing them as intermediates as well
	// would add no chain (any chain through a listed CA may stop there) but
	// would double the signature checks, the bulk of a pass's CPU. Roots is
	// never nil: a nil pool would make crypto/x509 fall back to the system
	// roots.
	ch := &checker{p: p, now: now, roots: x509.NewCertPool()}
	for _, ca := range p.IssuingCAs {
		if ca != nil {
			ch.roots.AddCert(ca)
			ch.anchors = append(ch.anchors, ca)
		}
	}
	if len(chain) > 0 {
		ch.intermediates = x509.NewCertPool()
		for _, c := range chain {
			ch.intermediates.AddCert(c)
		}
		ch.chain = chain
	}
	return ch
}

// check returns every failed check of c, most fundamental first (that
// order picks the Rejection's Code); no causes means c may be published.
// All causes are reported so that an admin fixes them in one go.
func (ch *checker) check(c *x509.Certificate, sum string) verdict {
	var vd verdict
	var cs []cause
	if isCA(c) {
		cs = append(cs, cause{RejectCA, "is a CA certificate, not an end-entity certificate"})
	}
	issuer, err := ch.verifiedIssuer(c, sum) // chains.go
	if err != nil {
		cs = append(cs, ch.untrusted(c, err))
	}
	// The CA that signed c is the one whose CRL speaks for c: every chain
	// found starts with a CA of the same name and key, since each verified
	// c's signature. A chain of c alone (c is itself a listed CA) has no
	// issuer to ask.
	if ch.p.CheckRevocation && issuer != nil {
		cs, vd.warnings = ch.revocation(c, issuer, cs)
	}
	if ch.p.SkipExpired {
		switch {
		case ch.now.After(c.NotAfter):
			cs = append(cs, cause{RejectExpired,
				fmt.Sprintf("expired on %s (policy.skipExpired)", c.NotAfter.UTC().Format(time.RFC3339))})
		case ch.now.Before(c.NotBefore):
			cs = append(cs, cause{RejectNotYetValid,
				fmt.Sprintf("not valid before %s (policy.skipExpired)", c.NotBefore.UTC().Format(time.RFC3339))})
		}
	}
	if ch.p.RequireSKI && len(c.SubjectKeyId) == 0 {
		cs = append(cs, cause{RejectNoSKI, "has no subject key identifier (policy.requireSKI)"})
	}
	if r := ekuProblem(c, ch.p.ExtKeyUsages); r != "" {
		cs = append(cs, cause{RejectEKU, r})
	}
	if r := sidProblem(c, ch.p.AccountSID); r != "" { // sid.go
		cs = append(cs, cause{RejectSIDMismatch, r})
	}
	if code, r, w := identityProblem(c, ch.p.Identity, ch.p.AccountIdentities); code != "" { // identity.go
		cs = append(cs, cause{code, r})
	} else if w != "" {
		vd.warnings = append(vd.warnings, w)
	}
	vd.causes = cs
	return vd
}

// revocation adds the revocation cause of c, issued by issuer, to cs, or
// returns the warning to carry when the status is unknown and the policy
// keeps such certificates.
func (ch *checker) revocation(c, issuer *x509.Certificate, cs []cause) ([]cause, []string) {
	st := ch.p.Revocation.status(c, issuer)
	switch {
	case st.revoked:
		return append(cs, cause{RejectRevoked, fmt.Sprintf("revoked on %s (%s) by %s, %s",
			utc(st.entry.at), CRLReasonName(st.entry.reason), issuer.Subject.String(), st.entry.crl)}), nil
	case st.unavailable == "":
		return cs, nil
	case ch.p.RevocationUnavailable == RevocationKeep:
		return cs, []string{fmt.Sprintf("revocation not checked: %s (policy.revocationUnavailable: keep)", st.unavailable)}
	default:
		return append(cs, cause{RejectRevocationUnknown, fmt.Sprintf("revocation status unknown: %s (policy.revocationUnavailable: reject)",
			st.unavailable)}), nil
	}
}

// at is the instant c's signature chain is checked at (verifiedIssuer,
// against the issuing CAs): now or, when c is outside its validity, the
// nearest moment inside it. Validity is the policy's business
// (SkipExpired, with its own code and reason), so an expired certificate
// is refused as untrusted only when a stranger signed it, and one allowed
// despite its age still has its signature checked. The EKU is checked
// separately for a clearer reason.
func (ch *checker) at(c *x509.Certificate) time.Time {
	switch {
	case ch.now.Before(c.NotBefore):
		return c.NotBefore
	case ch.now.After(c.NotAfter):
		return c.NotAfter
	}
	return ch.now
}

// ekuProblem says why c's extended key usage does not satisfy want, or ""
// when it does (or want is empty). A certificate without the extension is
// refused: RFC 5280 reads that as "any purpose", which is exactly what a
// policy naming purposes wants to exclude.
func ekuProblem(c *x509.Certificate, want []x509.ExtKeyUsage) string {
	if len(want) == 0 {
		return ""
	}
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return fmt.Sprintf("has no extended key usage; policy requires one of %s", ekuNames(want))
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageAny || slices.Contains(want, u) {
			return ""
		}
	}
	have := ekuNames(c.ExtKeyUsage)
	for _, oid := range c.UnknownExtKeyUsage {
		if have != "" {
			have += ", "
		}
		have += oid.String()
	}
	return fmt.Sprintf("extended key usage %s has none of %s (policy.extendedKeyUsages)", have, ekuNames(want))
}

type namedEKU struct {
	name string
	eku  x509.ExtKeyUsage
}

// knownEKUs uses the short names of RFC 5280 and OpenSSL, which admins know
// from certificate dumps. A function, not a variable: no package state.
func knownEKUs() []namedEKU {
	return []namedEKU{
		{"any", x509.ExtKeyUsageAny},
		{"serverAuth", x509.ExtKeyUsageServerAuth},
		{"clientAuth", x509.ExtKeyUsageClientAuth},
		{"codeSigning", x509.ExtKeyUsageCodeSigning},
		{"emailProtection", x509.ExtKeyUsageEmailProtection},
		{"ipsecEndSystem", x509.ExtKeyUsageIPSECEndSystem},
		{"ipsecTunnel", x509.ExtKeyUsageIPSECTunnel},
		{"ipsecUser", x509.ExtKeyUsageIPSECUser},
		{"timeStamping", x509.ExtKeyUsageTimeStamping},
		{"OCSPSigning", x509.ExtKeyUsageOCSPSigning},
		{"msSGC", x509.ExtKeyUsageMicrosoftServerGatedCrypto},
		{"nsSGC", x509.ExtKeyUsageNetscapeServerGatedCrypto},
		{"msCodeCom", x509.ExtKeyUsageMicrosoftCommercialCodeSigning},
		{"msKernelCodeSigning", x509.ExtKeyUsageMicrosoftKernelCodeSigning},
	}
}

// ExtKeyUsageName is the short name of u ("emailProtection"), or its number
// when crypto/x509 knows no name for it.
func ExtKeyUsageName(u x509.ExtKeyUsage) string {
	for _, e := range knownEKUs() {
		if e.eku == u {
			return e.name
		}
	}
	return fmt.Sprintf("ExtKeyUsage(%d)", int(u))
}

// ParseExtKeyUsage reads a short EKU name as written in the configuration
// ("emailProtection", "clientAuth", "any", ...), case-insensitively.
func ParseExtKeyUsage(s string) (x509.ExtKeyUsage, error) {
	for _, e := range knownEKUs() {
		if strings.EqualFold(e.name, strings.TrimSpace(s)) {
			return e.eku, nil
		}
	}
	var names []string
	for _, e := range knownEKUs() {
		names = append(names, e.name)
	}
	return 0, fmt.Errorf("mapping: unknown extended key usage %q (want one of %s)", s, strings.Join(names, ", "))
}

func ekuNames(us []x509.ExtKeyUsage) string {
	ns := make([]string, len(us))
	for i, u := range us {
		ns[i] = ExtKeyUsageName(u)
	}
	return strings.Join(ns, ", ")
}
