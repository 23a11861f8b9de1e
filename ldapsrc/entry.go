package ldapsrc

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/mapping"
)

// objectGUID is Active Directory's anchor: 16 raw bytes, which the cloud
// knows as their standard base64 (onPremisesImmutableId).
const (
	attrProxyAddresses = "proxyAddresses"
	attrObjectGUID     = "objectGUID"
	guidLen            = 16
)

// converter turns directory entries into SourceUsers. Names are matched
// case-insensitively and without options, because OpenLDAP answers
// "userCertificate;binary" where Active Directory answers "userCertificate".
type converter struct {
	anchor       string // as configured
	anchorKey    string // lower-cased: the key in SourceUser.Attributes
	anchorBinary bool   // objectGUID
	identity     []namedAttr
	certs        []namedAttr
	limits       Limits
}

// namedAttr pairs the name matched in entries with the name recorded.
type namedAttr struct {
	match string // configured name, compared with strings.EqualFold
	out   string // lower-cased key (identity) or canonical name (certificates)
}

func newConverter(cfg Config) converter {
	c := converter{
		anchor:       cfg.AnchorAttribute,
		anchorKey:    strings.ToLower(cfg.AnchorAttribute),
		anchorBinary: strings.EqualFold(cfg.AnchorAttribute, attrObjectGUID),
		limits:       cfg.Limits,
	}
	for _, a := range cfg.IdentityAttributes {
		if !strings.EqualFold(a, cfg.AnchorAttribute) {
			c.identity = append(c.identity, namedAttr{match: a, out: strings.ToLower(a)})
		}
	}
	for _, a := range cfg.CertificateAttributes {
		out := a
		for _, canon := range []string{mapping.AttrUserCertificate, mapping.AttrUserSMIMECertificate} {
			if strings.EqualFold(a, canon) {
				out = canon
			}
		}
		c.certs = append(c.certs, namedAttr{match: a, out: out})
	}
	return c
}

// requestedAttributes lists what a user search asks for: plain names only
// (Active Directory rejects ";binary" in requests), the anchor explicitly
// (entryUUID is operational on OpenLDAP and only returned when named).
func requestedAttributes(cfg Config) []string {
	var out []string
	add := func(a string) {
		for _, have := range out {
			if strings.EqualFold(have, a) {
				return
			}
		}
		out = append(out, a)
	}
	add(cfg.AnchorAttribute)
	for _, a := range cfg.IdentityAttributes {
		add(a)
	}
	for _, a := range cfg.CertificateAttributes {
		add(a)
	}
	return out
}

// baseName strips attribute options: "userCertificate;binary" → "userCertificate".
func baseName(attr string) string {
	name, _, _ := strings.Cut(attr, ";")
	return name
}

// user converts one entry. The error says why the entry has no usable
// anchor; such entries are not passed on.
func (c converter) user(e *ldap.Entry) (mapping.SourceUser, error) {
	u := mapping.SourceUser{DN: e.DN, Attributes: make(map[string]string, len(c.identity)+1)}
	for _, a := range e.Attributes {
		name := baseName(a.Name)
		if strings.EqualFold(name, c.anchor) && u.Anchor == "" && len(a.ByteValues) > 0 {
			anchor, err := c.anchorValue(a.ByteValues[0])
			if err != nil {
				return u, err
			}
			u.Anchor = anchor
			u.Attributes[c.anchorKey] = anchor
			continue
		}
		if len(a.ByteValues) == 0 {
			continue
		}
		for _, id := range c.identity {
			if strings.EqualFold(name, id.match) {
				if _, seen := u.Attributes[id.out]; !seen {
					u.Attributes[id.out] = identityValue(name, a.ByteValues)
				}
				break
			}
		}
		for _, ca := range c.certs {
			if strings.EqualFold(name, ca.match) {
				limit := c.valueLimit(ca.out)
				for _, v := range a.ByteValues {
					if len(v) > limit {
						u.Unread = append(u.Unread, mapping.UnreadValue{Attribute: ca.out, Size: len(v),
							Reason: fmt.Sprintf("%s value of %d bytes is larger than the %d bytes certsync reads (limits.maxValueBytes)", ca.out, len(v), limit)})
						continue
					}
					u.Values = append(u.Values, mapping.RawValue{Attribute: ca.out, Data: v})
				}
				break
			}
		}
	}
	c.capEntry(&u)
	if u.Anchor == "" {
		return u, fmt.Errorf("no %s value", c.anchor)
	}
	return u, nil
}

// valueLimit is the largest value of attr the converter passes on.
func (c converter) valueLimit(attr string) int {
	for a, n := range c.limits.MaxValueBytesByAttribute {
		if strings.EqualFold(a, attr) {
			return n
		}
	}
	if c.limits.MaxValueBytes == 0 {
		return DefaultMaxValueBytes
	}
	return c.limits.MaxValueBytes
}

// capEntry leaves every certificate value of u unread when the values it
// would pass on exceed the entry limit together: which of them to drop
// cannot be chosen fairly.
func (c converter) capEntry(u *mapping.SourceUser) {
	limit := c.limits.MaxEntryBytes
	if limit == 0 {
		limit = DefaultMaxEntryBytes
	}
	total := 0
	for _, v := range u.Values {
		total += len(v.Data)
	}
	if total <= limit {
		return
	}
	for _, v := range u.Values {
		u.Unread = append(u.Unread, mapping.UnreadValue{Attribute: v.Attribute, Size: len(v.Data),
			Reason: fmt.Sprintf("the entry's certificate values hold %d bytes together, more than the %d bytes certsync reads of one entry (limits.maxEntryBytes); this %s value of %d bytes is not read", total, limit, v.Attribute, len(v.Data))})
	}
	u.Values = nil
}

// identityValue is an identity attribute's first value as text: objectSid
// in its string form ("" when it is not a SID: no SID check is better than
// a wrong one), proxyAddresses as every value, one a line (the identity
// check takes each smtp: address as the user's), the others as they are.
func identityValue(name string, vs [][]byte) string {
	if strings.EqualFold(name, attrProxyAddresses) {
		return string(bytes.Join(vs, []byte("\n")))
	}
	v := vs[0]
	if !strings.EqualFold(name, attrObjectSID) {
		return string(v)
	}
	sid, err := FormatSID(v)
	if err != nil {
		return ""
	}
	return sid
}

func (c converter) anchorValue(v []byte) (string, error) {
	if !c.anchorBinary {
		if len(v) == 0 {
			return "", fmt.Errorf("empty %s value", c.anchor)
		}
		return string(v), nil
	}
	if len(v) != guidLen {
		return "", fmt.Errorf("%s is %d bytes, want %d", c.anchor, len(v), guidLen)
	}
	return base64.StdEncoding.EncodeToString(v), nil
}

// GUIDString renders an objectGUID anchor (the standard base64 of its 16
// bytes) as the GUID string people know from Active Directory's tools,
// e.g. "6f1d0b8c-3a2e-4c5b-9d7e-0123456789ab": the first three groups are
// stored little-endian. ok is false when anchor is not a base64 GUID (an
// entryUUID anchor is already text and is shown as it is).
func GUIDString(anchor string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(anchor)
	if err != nil || len(b) != guidLen {
		return "", false
	}
	return formatGUID(b), true
}
