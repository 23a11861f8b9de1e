package mapping

import (
	"crypto/x509"
	"errors"
	"fmt"
)

// Decode turns one directory value into the end-entity certificates it
// carries. A value is either one DER certificate (trailing bytes are an
// error) or a PKCS#7 SignedData: Outlook publishes userSMIMECertificate as a
// signed message carrying the user's certificate and its chain, other tools
// write a certificates-only ("degenerate") SignedData. BER is accepted for
// PKCS#7 because Windows tools emit indefinite lengths.
//
// From PKCS#7 only end-entity certificates are returned: the chain is not
// the user's and is never published on its own. A DER value is returned as
// is, CA or not, so that Evaluate can tell the admin a CA certificate sits
// where a user certificate belongs. A certificate of a bag that does not
// parse is an error here; Evaluate reports it on its own and judges its
// siblings. The result is never empty when err is nil.
func Decode(data []byte) ([]*x509.Certificate, error) {
	d, err := decodeValue(data)
	if err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	for _, b := range d.broken {
		return nil, fmt.Errorf("mapping: certificate %d of the PKCS#7: %w", b.index, b.err)
	}
	return d.endEntity, nil
}

// decoded is one directory value taken apart.
type decoded struct {
	// bag: the value is a PKCS#7, not one DER certificate.
	bag bool
	// endEntity are the certificates to judge: the DER certificate, or the
	// bag's end-entity certificates in bag order.
	endEntity []*x509.Certificate
	// chain are the bag's CA certificates: untrusted intermediates for
	// building paths to the issuing CAs, never published on their own.
	chain []*x509.Certificate
	// broken are the bag's certificates that did not parse.
	broken []brokenCert
}

// brokenCert is a certificate of a bag that did not parse.
type brokenCert struct {
	index int    // 1-based position in the bag
	raw   []byte // as found
	err   error
}

// decodeValue is Decode for Evaluate: the cause without the package
// prefix (it goes in a Rejection's Reason), and a bag's chain and broken
// certificates kept apart.
func decodeValue(data []byte) (decoded, error) {
	if len(data) == 0 {
		return decoded{}, errors.New("empty value")
	}
	if len(data) > maxValueSize {
		return decoded{}, fmt.Errorf("value of %d bytes is larger than the %d certsync reads", len(data), maxValueSize)
	}
	cert, derErr := x509.ParseCertificate(data)
	if derErr == nil {
		return decoded{endEntity: []*x509.Certificate{cert}}, nil
	}
	certs, bagErr := parseBag(data)
	if bagErr != nil {
		return decoded{}, fmt.Errorf("not a DER certificate (%w) nor PKCS#7 SignedData (%w)", derErr, bagErr)
	}
	d := decoded{bag: true}
	for i, bc := range certs {
		switch {
		case bc.Err != nil:
			d.broken = append(d.broken, brokenCert{index: i + 1, raw: bc.Raw, err: bc.Err})
		case isCA(bc.Cert):
			d.chain = append(d.chain, bc.Cert)
		default:
			d.endEntity = append(d.endEntity, bc.Cert)
		}
	}
	if len(d.endEntity) == 0 && len(d.broken) == 0 {
		if len(d.chain) == 0 {
			return decoded{}, errors.New("PKCS#7 without certificates (not a certificate value)")
		}
		return decoded{}, fmt.Errorf("PKCS#7 SignedData holds no end-entity certificate (%d CA certificates only)", len(d.chain))
	}
	return d, nil
}

func isCA(c *x509.Certificate) bool { return c.BasicConstraintsValid && c.IsCA }
