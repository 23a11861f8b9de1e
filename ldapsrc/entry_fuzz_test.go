package ldapsrc

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/mapping"
)

// searchResultEntry encodes an LDAPMessage carrying a SearchResultEntry
// as a directory sends it on the wire.
func searchResultEntry(dn string, attrs map[string][][]byte) []byte {
	msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
	msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(7), "MessageID"))
	e := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "SearchResultEntry")
	e.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "objectName"))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
	for name, vals := range attrs {
		a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attribute")
		a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, name, "type"))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
		for _, v := range vals {
			set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(v), "value"))
		}
		a.AppendChild(set)
		list.AppendChild(a)
	}
	e.AppendChild(list)
	msg.AppendChild(e)
	return msg.Bytes()
}

// entryFromPacket reads a SearchResultEntry the way go-ldap's search does
// (objectName, then each attribute's type and values), refusing shapes it
// would not take.
func entryFromPacket(p *ber.Packet) (*ldap.Entry, bool) {
	if len(p.Children) < 2 || p.Children[1].Tag != ldap.ApplicationSearchResultEntry || len(p.Children[1].Children) < 2 {
		return nil, false
	}
	r := p.Children[1]
	dn, ok := r.Children[0].Value.(string)
	if !ok {
		return nil, false
	}
	e := &ldap.Entry{DN: dn}
	for _, child := range r.Children[1].Children {
		if len(child.Children) < 2 {
			return nil, false
		}
		name, ok := child.Children[0].Value.(string)
		if !ok {
			return nil, false
		}
		a := &ldap.EntryAttribute{Name: name}
		for _, v := range child.Children[1].Children {
			a.Values = append(a.Values, v.Data.String())
			a.ByteValues = append(a.ByteValues, v.ByteValue)
		}
		e.Attributes = append(e.Attributes, a)
	}
	return e, true
}

// FuzzLDAPEntry: whatever bytes a directory sends as a search result
// entry, decoding (asn1-ber, as go-ldap reads the wire) and turning it
// into a user never panics; every certificate value the entry holds is
// passed on byte for byte; an anchor comes only from the anchor attribute.
func FuzzLDAPEntry(f *testing.F) {
	guid := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0xff}
	// OpenLDAP's shape (;binary option, entryUUID) and AD's (objectGUID,
	// plain names, an Outlook PKCS#7 in userSMIMECertificate).
	f.Add(searchResultEntry("uid=alice,ou=people,dc=example,dc=test", map[string][][]byte{
		"entryUUID": {[]byte("4f1d5b2e-0c3a-103f-9a61-7d4ad3f0c3b1")}, "mail": {[]byte("alice@example.test")},
		"userCertificate;binary": {{0x30, 0x82, 0x01, 0x0a, 0x02}, {0x30, 0x03, 0x01, 0x01, 0xff}}}), false)
	f.Add(searchResultEntry("CN=Alice,OU=People,DC=corp,DC=example", map[string][][]byte{
		"objectGUID": {guid}, "userPrincipalName": {[]byte("alice@corp.example")},
		"userCertificate": {{0x30, 0x82, 0x03, 0x00}}, "userSMIMECertificate": {{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80}}}), true)
	f.Add(searchResultEntry("CN=NoRights,DC=corp", map[string][][]byte{"objectGUID": {guid}}), true)
	f.Add(searchResultEntry("", map[string][][]byte{"objectGUID": {{1, 2}}, "userCertificate": {}}), true)
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x07}, false)
	f.Fuzz(func(t *testing.T, wire []byte, guidAnchor bool) {
		anchor := "entryUUID"
		if guidAnchor {
			anchor = "objectGUID"
		}
		p, err := ber.ReadPacket(bytes.NewReader(wire))
		if err != nil {
			return
		}
		e, ok := entryFromPacket(p)
		if !ok {
			return
		}
		c := converterFor(t, anchor)
		u, err := c.user(e)
		var certs [][]byte
		hasAnchor := false
		for _, a := range e.Attributes {
			base := baseName(a.Name)
			if strings.EqualFold(base, anchor) {
				hasAnchor = true
			}
			if strings.EqualFold(base, mapping.AttrUserCertificate) || strings.EqualFold(base, mapping.AttrUserSMIMECertificate) {
				certs = append(certs, a.ByteValues...)
			}
		}
		if err == nil && !hasAnchor {
			t.Fatalf("anchor %q from an entry without %s", u.Anchor, anchor)
		}
		if err != nil {
			return
		}
		if len(u.Values) != len(certs) {
			t.Fatalf("%d certificate values in the entry, %d passed on", len(certs), len(u.Values))
		}
		for i, v := range u.Values {
			if !slices.ContainsFunc(certs, func(c []byte) bool { return bytes.Equal(c, v.Data) }) {
				t.Fatalf("value %d changed: %x", i, v.Data)
			}
		}
	})
}
