package ldaptest

import (
	"bytes"
	"encoding/base64"
	"sort"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Person is one inetOrgPerson user.
type Person struct {
	UID  string // also the RDN: uid=UID,<peopleDN>
	CN   string // default UID
	SN   string // default UID
	Mail string // left out when empty
	// UserCertificates are DER certificates; slapd checks their syntax.
	UserCertificates [][]byte
	// SMIMECertificates are userSMIMECertificate values (any bytes:
	// PKCS#7 blobs as Outlook writes them, or raw DER).
	SMIMECertificates [][]byte
	// Attributes are further attributes of the schema, e.g. employeeNumber
	// or employeeType.
	Attributes map[string][]string
}

// PersonDN is the DN PersonLDIF and PersonEntry give p.
func PersonDN(peopleDN string, p Person) string {
	return "uid=" + ldap.EscapeDN(p.UID) + "," + peopleDN
}

// attributes lists p's attributes in LDIF order; certificate attributes
// carry the names OpenLDAP stores them under.
func (p Person) attributes() []entryAttr {
	cn, sn := p.CN, p.SN
	if cn == "" {
		cn = p.UID
	}
	if sn == "" {
		sn = p.UID
	}
	attrs := []entryAttr{
		{"objectClass", [][]byte{[]byte("inetOrgPerson")}},
		{"uid", [][]byte{[]byte(p.UID)}},
		{"cn", [][]byte{[]byte(cn)}},
		{"sn", [][]byte{[]byte(sn)}},
	}
	if p.Mail != "" {
		attrs = append(attrs, entryAttr{"mail", [][]byte{[]byte(p.Mail)}})
	}
	if len(p.UserCertificates) > 0 {
		attrs = append(attrs, entryAttr{"userCertificate;binary", p.UserCertificates})
	}
	if len(p.SMIMECertificates) > 0 {
		attrs = append(attrs, entryAttr{"userSMIMECertificate", p.SMIMECertificates})
	}
	names := make([]string, 0, len(p.Attributes))
	for n := range p.Attributes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		vals := make([][]byte, 0, len(p.Attributes[n]))
		for _, v := range p.Attributes[n] {
			vals = append(vals, []byte(v))
		}
		attrs = append(attrs, entryAttr{n, vals})
	}
	return attrs
}

type entryAttr struct {
	name   string
	values [][]byte
}

// PersonLDIF renders p as an LDIF record (for slapadd or ldapadd), with
// certificates as "userCertificate;binary:: base64" and
// "userSMIMECertificate:: base64".
func PersonLDIF(peopleDN string, p Person) []byte {
	var b bytes.Buffer
	writeLDIFLine(&b, "dn", []byte(PersonDN(peopleDN, p)))
	for _, a := range p.attributes() {
		for _, v := range a.values {
			writeLDIFLine(&b, a.name, v)
		}
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// PersonEntry is p as an Entry for StartMemory, attribute names as
// OpenLDAP returns them ("userCertificate;binary").
func PersonEntry(peopleDN string, p Person) Entry {
	e := Entry{DN: PersonDN(peopleDN, p), Attributes: map[string][][]byte{}}
	for _, a := range p.attributes() {
		e.Attributes[a.name] = append(e.Attributes[a.name], a.values...)
	}
	return e
}

// writeLDIFLine writes "name: value", or "name:: base64" when the value is
// not a safe string (RFC 2849) or is a certificate.
func writeLDIFLine(b *bytes.Buffer, name string, v []byte) {
	b.WriteString(name)
	if ldifSafe(v) && !isCertAttr(name) {
		b.WriteString(": ")
		b.Write(v)
	} else {
		b.WriteString(":: ")
		b.WriteString(base64.StdEncoding.EncodeToString(v))
	}
	b.WriteByte('\n')
}

func isCertAttr(name string) bool {
	base, _, _ := strings.Cut(name, ";")
	return strings.EqualFold(base, "userCertificate") || strings.EqualFold(base, "userSMIMECertificate")
}

// ldifSafe reports whether v may be written as a plain LDIF value.
func ldifSafe(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	if v[0] == ' ' || v[0] == ':' || v[0] == '<' || v[len(v)-1] == ' ' {
		return false
	}
	for _, c := range v {
		if c == 0 || c == '\n' || c == '\r' || c > 127 {
			return false
		}
	}
	return true
}
