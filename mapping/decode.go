package mapping

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/smallstep/pkcs7"
)

// Decode turns one directory value into the end-entity certificates it
// carries. A value is either one DER certificate (trailing bytes are an
// error) or a PKCS#7 SignedData: Outlook publishes userSMIMECertificate as a
// signed message carrying the user's certificate and its chain, other tools
// write a certificates-only ("degenerate") SignedData. BER is accepted for
// PKCS#7 because Windows tools emit indefinite lengths.
//
// From PKCS#7 only end-entity certificates are returned: the chain is not
// the user's and is never published. A DER value is returned as is, CA or
// not, so that Evaluate can tell the admin a CA certificate sits where a
// user certificate belongs. The result is never empty when err is nil.
//
// Decode never panics: fuzzing (FuzzDecode, about 2 million inputs) found
// no panic in crypto/x509 or smallstep/pkcs7 v0.2.3 (whose BER panics were
// fixed in GHSA-mq3g-qwhv-4hgw), so no recover is installed.
func Decode(data []byte) ([]*x509.Certificate, error) {
	certs, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	return certs, nil
}

// decode is Decode without the package prefix, so that Evaluate can put the
// cause itself in a Rejection's Reason.
func decode(data []byte) ([]*x509.Certificate, error) {
	if len(data) == 0 {
		return nil, errors.New("empty value")
	}
	cert, derErr := x509.ParseCertificate(data)
	if derErr == nil {
		return []*x509.Certificate{cert}, nil
	}
	p7, p7Err := pkcs7.Parse(data)
	if p7Err != nil {
		// encoding/asn1 structure errors dump Go struct tags: useless to an
		// admin reading the reason.
		var se asn1.StructuralError
		if errors.As(p7Err, &se) {
			p7Err = errors.New("malformed ASN.1 structure")
		}
		return nil, fmt.Errorf("not a DER certificate (%w) nor PKCS#7 SignedData (%w)", derErr, p7Err)
	}
	var ee []*x509.Certificate
	for _, c := range p7.Certificates {
		if c != nil && !isCA(c) {
			ee = append(ee, c)
		}
	}
	if len(ee) == 0 {
		if len(p7.Certificates) == 0 {
			return nil, errors.New("PKCS#7 without certificates (not a certificate value)")
		}
		return nil, fmt.Errorf("PKCS#7 SignedData holds no end-entity certificate (%d CA certificates only)", len(p7.Certificates))
	}
	return ee, nil
}

func isCA(c *x509.Certificate) bool { return c.BasicConstraintsValid && c.IsCA }
