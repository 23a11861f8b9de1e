package mapping

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
)

// RejectSHA1 is a certificate whose only path to a trusted issuing CA has a
// SHA-1 signature: crypto/x509 refuses SHA-1 signatures (chosen-prefix
// collisions make them forgeable), and the admin needs to know that
// re-issuing with SHA-256 fixes it, not that the CA is not trusted.
const RejectSHA1 = "sha1-signature"

// maxSHA1Path bounds the path the SHA-1 diagnosis walks.
const maxSHA1Path = 8

// untrusted is the cause for a certificate crypto/x509 found no chain for:
// RejectSHA1 when a chain exists whose signatures all verify but one at
// least is SHA-1, RejectUntrusted otherwise.
func (ch *checker) untrusted(c *x509.Certificate, verifyErr error) cause {
	if child, parent, _ := ch.sha1Path(c, 0); child != nil {
		return cause{RejectSHA1, fmt.Sprintf("its chain to a trusted issuing CA holds a SHA-1 signature (%s, on %s by %s); SHA-1 signatures can be forged and are refused: re-issue with SHA-256",
			child.SignatureAlgorithm, child.Subject.String(), parent.Subject.String())}
	}
	return cause{RejectUntrusted, fmt.Sprintf("not issued by a trusted issuing CA (issuer %s): %v", c.Issuer.String(), verifyErr)}
}

// sha1Path looks for paths from c to an anchor whose signatures all
// verify, SHA-1 ones checked by hand. It returns the first SHA-1 link of
// such a path (nil when every path found is SHA-1 free) and whether any
// path was found.
func (ch *checker) sha1Path(c *x509.Certificate, depth int) (child, parent *x509.Certificate, reached bool) {
	if depth >= maxSHA1Path {
		return nil, nil, false
	}
	for i, cand := range append(append([]*x509.Certificate{}, ch.anchors...), ch.chain...) {
		if !bytes.Equal(cand.RawSubject, c.RawIssuer) || bytes.Equal(cand.Raw, c.Raw) {
			continue
		}
		weak, valid := linkVerifies(c, cand)
		if !valid {
			continue
		}
		if i >= len(ch.anchors) { // an intermediate: the path goes on
			wc, wp, r := ch.sha1Path(cand, depth+1)
			if !r {
				continue
			}
			if !weak && wc != nil {
				return wc, wp, true
			}
		}
		if weak {
			return c, cand, true
		}
		reached = true
	}
	return nil, nil, reached
}

// linkVerifies checks parent's signature on child; weak says it is SHA-1,
// which crypto/x509 refuses to check and this does by hand.
func linkVerifies(child, parent *x509.Certificate) (weak, valid bool) {
	err := child.CheckSignatureFrom(parent)
	if err == nil {
		return false, true
	}
	var insecure x509.InsecureAlgorithmError
	if !errors.As(err, &insecure) || !parent.IsCA {
		return false, false
	}
	h := sha1.Sum(child.RawTBSCertificate)
	switch pub := parent.PublicKey.(type) {
	case *rsa.PublicKey:
		return true, child.SignatureAlgorithm == x509.SHA1WithRSA && rsa.VerifyPKCS1v15(pub, crypto.SHA1, h[:], child.Signature) == nil
	case *ecdsa.PublicKey:
		return true, child.SignatureAlgorithm == x509.ECDSAWithSHA1 && ecdsa.VerifyASN1(pub, h[:], child.Signature)
	}
	return true, false
}
