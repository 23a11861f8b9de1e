package mapping

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
)

// A PKCS#7 certificate bag is taken apart by a small walk of its own
// rather than by a general PKCS#7 library: a security review found that
// smallstep/pkcs7 recurses without limit on nested BER (fatal near 4 MB)
// and runs quadratic (2 MB took 190 s of CPU). The walk below reads BER
// (indefinite lengths, as Outlook and other Windows tools write them) and
// DER, descends only along ContentInfo → SignedData → certificates, never
// nests deeper than maxBERDepth, and reads every byte a bounded number of
// times, so a value's cost is linear in its size, which is itself bounded.
const (
	// maxValueSize bounds one directory value. AD caps userSMIMECertificate
	// at 32,768 bytes; a certificate of 1 MiB is not a certificate.
	maxValueSize = 1 << 20
	// maxBERDepth bounds nesting while skipping indefinite-length elements.
	maxBERDepth = 32
	// maxBagCertificates bounds the certificates of one bag.
	maxBagCertificates = 64
)

// oidSignedData is PKCS#7 signedData, 1.2.840.113549.1.7.2, as DER content.
var oidSignedData = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}

// bagCert is one certificate of a bag: parsed, or with the reason it did
// not parse. Raw is its encoding as found.
type bagCert struct {
	Raw  []byte
	Cert *x509.Certificate // nil when Err is set
	Err  error
}

// parseBag walks a PKCS#7 ContentInfo holding SignedData and returns its
// certificates in bag order, each parsed on its own: one that does not
// parse does not void the others. Other CertificateChoices (attribute
// certificates) are skipped. The error is for a value that is not such a
// bag at all.
func parseBag(data []byte) ([]bagCert, error) {
	if len(data) > maxValueSize {
		return nil, fmt.Errorf("value of %d bytes is larger than the %d certsync reads", len(data), maxValueSize)
	}
	ci, rest, err := readBER(data, 0)
	if err != nil {
		return nil, fmt.Errorf("ContentInfo: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d bytes after the ContentInfo", len(rest))
	}
	if ci.tag != tagSequence {
		return nil, errors.New("ContentInfo is not a SEQUENCE")
	}
	oid, body, err := readBER(ci.body, 1)
	if err != nil || oid.tag != tagOID {
		return nil, errors.New("ContentInfo has no content type")
	}
	if !bytes.Equal(oid.body, oidSignedData) {
		return nil, errors.New("content type is not PKCS#7 signedData")
	}
	explicit, _, err := readBER(body, 1)
	if err != nil || explicit.tag != tagContext0 {
		return nil, errors.New("signedData has no content")
	}
	sd, _, err := readBER(explicit.body, 2)
	if err != nil || sd.tag != tagSequence {
		return nil, errors.New("signedData content is not a SEQUENCE")
	}
	// version INTEGER, digestAlgorithms SET, encapContentInfo SEQUENCE,
	// then the optional certificates [0] IMPLICIT SET OF.
	fields := sd.body
	for _, want := range []byte{tagInteger, tagSet, tagSequence} {
		var f berElem
		if f, fields, err = readBER(fields, 3); err != nil || f.tag != want {
			return nil, errors.New("SignedData is not version, digest algorithms, content info")
		}
	}
	set, _, err := readBER(fields, 3)
	if err != nil {
		return nil, fmt.Errorf("SignedData after the content info: %w", err)
	}
	if set.tag != tagContext0 {
		return nil, nil // no certificates: the caller says so
	}
	var out []bagCert
	for rest := set.body; len(rest) > 0; {
		var e berElem
		if e, rest, err = readBER(rest, 4); err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		if e.tag != tagSequence {
			continue // an attribute certificate or other choice: not X.509
		}
		if len(out) == maxBagCertificates {
			return nil, fmt.Errorf("more than %d certificates in one value", maxBagCertificates)
		}
		bc := bagCert{Raw: e.full}
		if e.indefinite {
			bc.Err = errors.New("encoded with BER indefinite lengths, not DER (its signature cannot be checked)")
		} else if bc.Cert, bc.Err = x509.ParseCertificate(e.full); bc.Err != nil {
			bc.Cert = nil
		}
		out = append(out, bc)
	}
	return out, nil
}

// BER identifier octets certsync looks for.
const (
	tagInteger  = 0x02
	tagOID      = 0x06
	tagSequence = 0x30
	tagSet      = 0x31
	tagContext0 = 0xa0
)

// berElem is one BER element: full is all its bytes (header, content and,
// for an indefinite length, the end-of-contents octets), body its content.
// tag is the first identifier octet; high tag numbers keep their first
// octet only, which certsync never looks for.
type berElem struct {
	tag        byte
	full, body []byte
	indefinite bool
}

// readBER reads the element at the start of b and returns it with the
// bytes after it. depth is how deep b lies in the value; an
// indefinite-length element is measured by skipping its children, each
// one level deeper.
func readBER(b []byte, depth int) (berElem, []byte, error) {
	if depth > maxBERDepth {
		return berElem{}, nil, fmt.Errorf("nested deeper than %d", maxBERDepth)
	}
	if len(b) < 2 {
		return berElem{}, nil, errors.New("truncated")
	}
	tag, i := b[0], 1
	if tag&0x1f == 0x1f { // high tag number: base-128 octets
		for n := 0; ; n++ {
			if i >= len(b) || n == 4 {
				return berElem{}, nil, errors.New("bad tag")
			}
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return berElem{}, nil, errors.New("truncated")
	}
	l := b[i]
	i++
	constructed := tag&0x20 != 0
	switch {
	case l == 0x80:
		if !constructed {
			return berElem{}, nil, errors.New("indefinite length on a primitive element")
		}
		start, rest := i, b[i:]
		for {
			if len(rest) >= 2 && rest[0] == 0 && rest[1] == 0 {
				end := len(b) - len(rest)
				return berElem{tag: tag, full: b[:end+2], body: b[start:end], indefinite: true}, rest[2:], nil
			}
			var err error
			if _, rest, err = readBER(rest, depth+1); err != nil {
				return berElem{}, nil, err
			}
		}
	case l < 0x80:
		return definite(b, tag, i, int(l))
	case l == 0xff || l-0x80 > 4:
		return berElem{}, nil, errors.New("bad length")
	}
	n := int(l - 0x80)
	if i+n > len(b) {
		return berElem{}, nil, errors.New("truncated")
	}
	size := 0
	for _, c := range b[i : i+n] {
		size = size<<8 | int(c)
	}
	return definite(b, tag, i+n, size)
}

func definite(b []byte, tag byte, hdr, size int) (berElem, []byte, error) {
	if size < 0 || size > len(b)-hdr {
		return berElem{}, nil, errors.New("truncated")
	}
	end := hdr + size
	return berElem{tag: tag, full: b[:end], body: b[hdr:end]}, b[end:], nil
}
