package mapping

import (
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"unicode/utf16"
)

// Formats of Entra ID certificateUserIds values, as Microsoft documents them.
//
// Sources (read 2026):
//   - learn.microsoft.com/entra/identity/authentication/concept-certificate-based-authentication-certificateuserids
//     ("Supported patterns for certificate user IDs"): at most 10 values
//     (older revisions: 5), each at most 1024 characters, unique in the
//     tenant; "The X509:<Mapping> prefixes are case-sensitive". Patterns:
//     X509:<SKI>…, X509:<SHA1-PUKEY>…,
//     X509:<I>DC=com,DC=contoso,CN=CONTOSO-DC-CA<SR>b24134139f069b49997212a86ba0ef48.
//   - learn.microsoft.com/entra/identity/authentication/how-to-certificate-based-authentication
//     ("Test the username binding policy", "Issuer and serial number manual
//     mapping"): "The format of the values of Issuer, Subject, and Serial
//     number must be in the reverse order of their format in the
//     certificate. Don't add any spaces in the Issuer or Subject values."
//     Worked example: certutil shows "Serial Number:
//     48efa06ba8127299499b069f133441b2" and the value to store is
//     "b24134139f069b49997212a86ba0ef48" (the same bytes, last first); the
//     issuer is written "C=US,O=U.SGovernment,OU=DoD,OU=PKI,OU=CONTRACTOR,
//     CN=CRL.BALA.SelfSignedCertificate", i.e. the RDNs in the order they are
//     encoded in the certificate (Windows displays them CN first), joined by
//     "," without spaces.
//   - Microsoft's own generator, Get-EntraUserCertificateUserIdsFromCertificate
//     (github.com/microsoftgraph/entra-powershell), which the docs point to:
//     SKI = X509SubjectKeyIdentifierExtension.SubjectKeyIdentifier
//     (upper-case hex of the extension's key identifier); SHA1-PUKEY =
//     X509Certificate.GetCertHashString(), the upper-case SHA-1 of the WHOLE
//     certificate DER (the thumbprint, despite the name); issuer =
//     X500DistinguishedName.Decode(UseNewLines|DoNotUsePlusSign) with the
//     line breaks replaced by "," — encoding order, Windows attribute names
//     (CN, OU, O, L, S, C, E, DC, ...), values quoted "…" when they hold
//     , + = " < > # ; or a line break or start/end with white space, and the
//     attributes of a multi-valued RDN separated by one space.
//
// Where those disagree, certsync follows the documentation: the generator
// prints the serial big-endian (it reverses .NET's little-endian
// GetSerialNumber), and an open pull request (entra-powershell #1511)
// reports that Entra does not match that form; the docs' worked example
// stores the serial byte-reversed, lower-case, and so does certsync (the DER
// INTEGER content bytes, including a leading 00, last byte first).
// Microsoft's KDC specification (MS-PKCA 3.1.5.2.1.3) calls SHA1-PUKEY "SHA1
// hash of public key", but Entra's generator hashes the whole certificate
// and DESIGN.md says the same; certsync hashes the whole certificate.

// maxBindingLen is Entra's limit on one certificateUserIds value.
const maxBindingLen = 1024

// ParseBindingKind reads a binding kind as written in the configuration:
// "SKI", "SHA1-PUKEY" or "ISSUER-SERIAL", case-insensitively.
func ParseBindingKind(s string) (BindingKind, error) {
	for _, k := range []BindingKind{BindingSKI, BindingSHA1PublicKey, BindingIssuerSerial} {
		if strings.EqualFold(strings.TrimSpace(s), string(k)) {
			return k, nil
		}
	}
	return "", fmt.Errorf("mapping: unknown binding kind %q (want %s, %s or %s)",
		s, BindingSKI, BindingSHA1PublicKey, BindingIssuerSerial)
}

// Binding renders the certificateUserIds value of kind k for c. It fails
// when c lacks what k needs (no SKI, an empty issuer, a negative serial) or
// when the value would exceed Entra's 1024 characters.
func Binding(c *x509.Certificate, k BindingKind) (string, error) {
	if c == nil {
		return "", errors.New("mapping: binding of a nil certificate")
	}
	var v string
	switch k {
	case BindingSKI:
		if len(c.SubjectKeyId) == 0 {
			return "", fmt.Errorf("mapping: binding %s for certificate %q (serial %s): no subject key identifier", k, c.Subject, serialHex(c))
		}
		v = "X509:<SKI>" + strings.ToUpper(hex.EncodeToString(c.SubjectKeyId))
	case BindingSHA1PublicKey:
		sum := sha1.Sum(c.Raw)
		v = "X509:<SHA1-PUKEY>" + strings.ToUpper(hex.EncodeToString(sum[:]))
	case BindingIssuerSerial:
		issuer, err := entraDN(c.RawIssuer)
		if err != nil {
			return "", fmt.Errorf("mapping: binding %s for certificate %q (serial %s): issuer: %w", k, c.Subject, serialHex(c), err)
		}
		serial, err := entraSerial(c.SerialNumber)
		if err != nil {
			return "", fmt.Errorf("mapping: binding %s for certificate %q: %w", k, c.Subject, err)
		}
		v = "X509:<I>" + issuer + "<SR>" + serial
	default:
		return "", fmt.Errorf("mapping: unknown binding kind %q", k)
	}
	// Entra counts characters; UTF-16 code units are the strictest reading.
	if n := len(utf16.Encode([]rune(v))); n > maxBindingLen {
		return "", fmt.Errorf("mapping: binding %s for certificate %q (serial %s) is %d characters, above Entra's limit of %d",
			k, c.Subject, serialHex(c), n, maxBindingLen)
	}
	return v, nil
}

// CertificateUserIDs renders the bindings of certs (in their priority
// order) for each of kinds (in the given order), without duplicates. A kind
// a certificate cannot produce (no SKI, ...) is skipped, not an error: the
// other kinds still bind it. The result is nil when nothing can be bound.
func CertificateUserIDs(certs []Certificate, kinds []BindingKind) []string {
	var out []string
	for _, c := range certs {
		for _, k := range kinds {
			v, err := Binding(c.Cert, k)
			if err != nil || slices.Contains(out, v) {
				continue
			}
			out = append(out, v)
		}
	}
	return out
}

// entraSerial writes a serial number the way Entra matches it: the DER
// INTEGER content bytes (minimal two's complement, so a leading 00 when the
// top bit is set) in reverse order, lower-case hex.
func entraSerial(n *big.Int) (string, error) {
	if n == nil {
		return "", errors.New("no serial number")
	}
	if n.Sign() < 0 {
		return "", fmt.Errorf("negative serial number %s", n)
	}
	b := n.Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	slices.Reverse(b)
	return hex.EncodeToString(b), nil
}

// entraDN writes a DER Name the way Windows does with
// X500DistinguishedNameFlags.UseNewLines|DoNotUsePlusSign, line breaks
// turned into ",": RDNs in encoding order, Windows attribute names.
func entraDN(raw []byte) (string, error) {
	var seq pkix.RDNSequence
	rest, err := asn1.Unmarshal(raw, &seq)
	if err != nil {
		return "", err
	}
	if len(rest) > 0 {
		return "", errors.New("trailing data after the name")
	}
	if len(seq) == 0 {
		return "", errors.New("empty name")
	}
	rdns := make([]string, 0, len(seq))
	for _, rdn := range seq {
		atvs := make([]string, 0, len(rdn))
		for _, atv := range rdn {
			val, err := dnValue(atv.Value)
			if err != nil {
				return "", fmt.Errorf("attribute %s: %w", atv.Type, err)
			}
			atvs = append(atvs, dnAttrName(atv.Type)+"="+val)
		}
		rdns = append(rdns, strings.Join(atvs, " "))
	}
	return strings.Join(rdns, ","), nil
}

// dnAttrName is the name Windows (CertNameToStr, .NET Oid friendly names)
// gives an attribute type; "OID." + dotted form for the others.
func dnAttrName(t asn1.ObjectIdentifier) string {
	switch t.String() {
	case "2.5.4.3":
		return "CN"
	case "2.5.4.4":
		return "SN"
	case "2.5.4.5":
		return "SERIALNUMBER"
	case "2.5.4.6":
		return "C"
	case "2.5.4.7":
		return "L"
	case "2.5.4.8":
		return "S"
	case "2.5.4.9":
		return "STREET"
	case "2.5.4.10":
		return "O"
	case "2.5.4.11":
		return "OU"
	case "2.5.4.12":
		return "T"
	case "2.5.4.42":
		return "G"
	case "2.5.4.43":
		return "I"
	case "0.9.2342.19200300.100.1.25":
		return "DC"
	case "1.2.840.113549.1.9.1":
		return "E"
	}
	return "OID." + t.String()
}

// dnValue quotes a value the way Windows does: in double quotes, inner
// quotes doubled, when it is empty, starts or ends with white space or holds
// one of , + = " \n < > # ;. crypto/x509 only accepts string values in
// names, so a non-string can only come from a certificate it refused.
func dnValue(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("value of type %T is not a string", v)
	}
	needsQuotes := s == "" ||
		isQuotableSpace(s[0]) || isQuotableSpace(s[len(s)-1]) ||
		strings.ContainsAny(s, ",+=\"\n<>#;")
	if !needsQuotes {
		return s, nil
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`, nil
}

// isQuotableSpace matches .NET's X500NameEncoder: space and \t..\r.
func isQuotableSpace(c byte) bool { return c == ' ' || (c >= 0x09 && c <= 0x0D) }
