package pkitest

import (
	"bytes"
	"encoding/asn1"
	"fmt"
)

// TLV encodes one ASN.1 element: a definite DER length, or a BER
// indefinite length (for constructed elements) as Windows tools write.
func TLV(tag byte, indefinite bool, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	if indefinite {
		return append(append([]byte{tag, 0x80}, body...), 0, 0)
	}
	n := len(body)
	switch {
	case n < 0x80:
		return append([]byte{tag, byte(n)}, body...)
	case n < 0x100:
		return append([]byte{tag, 0x81, byte(n)}, body...)
	case n < 0x10000:
		return append([]byte{tag, 0x82, byte(n >> 8), byte(n)}, body...)
	}
	return append([]byte{tag, 0x83, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

var (
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
)

// Bag builds a certificates-only SignedData holding the given encodings
// in the given order (any bytes: a test may slip in one Go cannot parse),
// with BER indefinite lengths on every constructed element outside the
// certificates when ber is set, as Outlook's bags come.
func Bag(ber bool, certs ...[]byte) []byte {
	sd := TLV(0x30, ber,
		[]byte{0x02, 1, 1},
		TLV(0x31, ber),
		TLV(0x30, ber, mustOID(oidData)),
		TLV(0xa0, ber, certs...),
		TLV(0x31, ber))
	return TLV(0x30, ber, mustOID(oidSignedData), TLV(0xa0, ber, sd))
}

// ToBER re-encodes a DER ContentInfo (a signed PKCS#7 from SignedPKCS7)
// with indefinite lengths on the ContentInfo, its [0] and the SignedData,
// leaving SignedData's fields byte for byte.
func ToBER(der []byte) ([]byte, error) {
	var ci struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return nil, fmt.Errorf("pkitest: ContentInfo: %w", err)
	}
	var sd asn1.RawValue
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, fmt.Errorf("pkitest: SignedData: %w", err)
	}
	return TLV(0x30, true, mustOID(ci.Type), TLV(0xa0, true, TLV(0x30, true, sd.Bytes))), nil
}

// Unparseable is a SEQUENCE crypto/x509 cannot parse as a certificate, as
// one with a curve or key Go does not know is to it.
func Unparseable() []byte {
	return TLV(0x30, false, TLV(0x30, false, []byte{0x02, 1, 2}), []byte{0x05, 0})
}

func mustOID(o asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(o)
	if err != nil {
		panic(err) // constant OIDs always marshal
	}
	return b
}
