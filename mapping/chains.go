package mapping

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"time"
)

// ChainMemo remembers the certificates found to chain to a trusted issuing
// CA, so that a pass does not check again the signatures an earlier pass
// checked: P-256 signature verification is most of a pass's CPU. What is
// remembered is only the chain (which CA certificates, valid when); every
// other check (the policy's, the CRLs', the account's SID) runs on every
// evaluation, so a changed policy or CRL needs no invalidation. The chain
// is used again only while every one of its CA certificates is still a
// trusted issuing CA or, for an intermediate, in the user's bags, and only
// at an instant inside all of their validity periods: removing or
// replacing a CA invalidates exactly the chains through it. Failed
// verifications are not remembered (rare, and their reasons name the
// current set). Implementations must be safe for concurrent use.
type ChainMemo interface {
	// VerifiedChain returns the chain remembered for the certificate whose
	// DER has SHA-256 sum.
	VerifiedChain(sum [sha256.Size]byte) (VerifiedChain, bool)
	// RememberChain records a chain just verified.
	RememberChain(sum [sha256.Size]byte, vc VerifiedChain)
}

// VerifiedChain is one certificate's verified signature chain.
type VerifiedChain struct {
	// CAs are the SHA-256 sums of the chain's CA certificates, its issuer
	// first and the trusted issuing CA it reached last; empty when the
	// certificate is itself a trusted issuing CA.
	CAs [][sha256.Size]byte
	// From and Until bound the instants at which every certificate of the
	// chain is valid: a check at an instant between them (the certificate's
	// own validity clamps it, see checker.verify) finds the same chain.
	From, Until time.Time
	// Expires is the certificate's own notAfter: a store may forget the
	// chain after it (an expired certificate is rarely worth the space).
	Expires time.Time
}

// verifiedIssuer checks c's signature chain, or finds it remembered, and
// returns c's issuer (nil when c is itself a trusted issuing CA). sum is
// c's SHA-256 in hex, as Evaluate computes it.
func (ch *checker) verifiedIssuer(c *x509.Certificate, sum string) (*x509.Certificate, error) {
	memo := ch.memo
	var key [sha256.Size]byte
	if memo != nil {
		if _, err := hex.Decode(key[:], []byte(sum)); err != nil {
			memo = nil // never: Evaluate made sum
		}
	}
	at := ch.at(c)
	if memo != nil {
		if vc, ok := memo.VerifiedChain(key); ok {
			if issuer, ok := ch.stillHolds(key, vc, at); ok {
				return issuer, nil
			}
		}
	}
	chains, err := c.Verify(x509.VerifyOptions{
		Roots:         ch.roots,
		Intermediates: ch.intermediates,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, err
	}
	chain := chains[0]
	if memo != nil && !ch.now.After(c.NotAfter) {
		vc := VerifiedChain{Expires: c.NotAfter}
		for _, ca := range chain[1:] {
			vc.CAs = append(vc.CAs, sha256.Sum256(ca.Raw))
			if vc.From.IsZero() || ca.NotBefore.After(vc.From) {
				vc.From = ca.NotBefore
			}
			if vc.Until.IsZero() || ca.NotAfter.Before(vc.Until) {
				vc.Until = ca.NotAfter
			}
		}
		if len(chain) == 1 {
			vc.From, vc.Until = c.NotBefore, c.NotAfter
		}
		memo.RememberChain(key, vc)
	}
	if len(chain) > 1 {
		return chain[1], nil
	}
	return nil, nil
}

// stillHolds says whether a remembered chain of the certificate with
// SHA-256 sum applies at instant at, with today's trusted issuing CAs and
// the user's bags, and returns the certificate's issuer.
func (ch *checker) stillHolds(sum [sha256.Size]byte, vc VerifiedChain, at time.Time) (*x509.Certificate, bool) {
	if at.Before(vc.From) || at.After(vc.Until) {
		return nil, false
	}
	if len(vc.CAs) == 0 {
		return nil, ch.anchor(sum) != nil
	}
	var issuer *x509.Certificate
	for i, s := range vc.CAs {
		ca := ch.anchor(s)
		if ca == nil && i < len(vc.CAs)-1 {
			ca = ch.bagCA(s)
		}
		if ca == nil {
			return nil, false
		}
		if i == 0 {
			issuer = ca
		}
	}
	return issuer, true
}

// anchor is the trusted issuing CA with SHA-256 sum, or nil.
func (ch *checker) anchor(sum [sha256.Size]byte) *x509.Certificate {
	if ch.anchorSums == nil {
		ch.anchorSums = make([][sha256.Size]byte, len(ch.anchors))
		for i, ca := range ch.anchors {
			ch.anchorSums[i] = sha256.Sum256(ca.Raw)
		}
	}
	for i, s := range ch.anchorSums {
		if s == sum {
			return ch.anchors[i]
		}
	}
	return nil
}

// bagCA is the CA certificate of the user's bags with SHA-256 sum, or nil.
func (ch *checker) bagCA(sum [sha256.Size]byte) *x509.Certificate {
	for _, c := range ch.chain {
		if sha256.Sum256(c.Raw) == sum {
			return c
		}
	}
	return nil
}
