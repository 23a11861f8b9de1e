package ldapsrc

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/mapping"
)

func attr(name string, values ...[]byte) *ldap.EntryAttribute {
	a := &ldap.EntryAttribute{Name: name, ByteValues: values}
	for _, v := range values {
		a.Values = append(a.Values, string(v))
	}
	return a
}

func converterFor(t testing.TB, anchor string) converter {
	t.Helper()
	cfg, _, err := Config{URL: "ldaps://dc01", BaseDN: "dc=x", AnchorAttribute: anchor,
		Bind: Bind{Username: "u", Password: "p"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newConverter(cfg)
}

func TestConverter(t *testing.T) {
	guid := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0xff}
	der1, der2, p7 := []byte{0x30, 0x01, 0xaa}, []byte{0x30, 0x01, 0xbb}, []byte{0x30, 0x80, 0x06}
	tests := []struct {
		name       string
		anchor     string
		attrs      []*ldap.EntryAttribute
		wantAnchor string
		wantAttrs  map[string]string
		wantValues []mapping.RawValue
		wantErr    string
	}{
		{
			name:   "active directory",
			anchor: "objectGUID",
			attrs: []*ldap.EntryAttribute{
				attr("objectGUID", guid),
				attr("mail", []byte("a@contoso.com")),
				attr("userPrincipalName", []byte("a@contoso.onmicrosoft.com")),
				attr("sAMAccountName", []byte("a")),
				attr("userCertificate", der1, der2),
				attr("userSMIMECertificate", p7),
			},
			wantAnchor: base64.StdEncoding.EncodeToString(guid),
			wantAttrs: map[string]string{"objectguid": base64.StdEncoding.EncodeToString(guid), "mail": "a@contoso.com",
				"userprincipalname": "a@contoso.onmicrosoft.com", "samaccountname": "a"},
			wantValues: []mapping.RawValue{{Attribute: "userCertificate", Data: der1}, {Attribute: "userCertificate", Data: der2},
				{Attribute: "userSMIMECertificate", Data: p7}},
		},
		{
			name:   "openldap names with options, any case",
			anchor: "entryUUID",
			attrs: []*ldap.EntryAttribute{
				attr("UID", []byte("alice"), []byte("alice2")),
				attr("userCertificate;binary", der1),
				attr("usersmimecertificate;binary", p7),
				attr("entryUUID", []byte("6a0c5e1c-2b0c-103e-8d5a-4b1f9c0e7a11")),
			},
			wantAnchor: "6a0c5e1c-2b0c-103e-8d5a-4b1f9c0e7a11",
			wantAttrs:  map[string]string{"entryuuid": "6a0c5e1c-2b0c-103e-8d5a-4b1f9c0e7a11", "uid": "alice"},
			wantValues: []mapping.RawValue{{Attribute: "userCertificate", Data: der1}, {Attribute: "userSMIMECertificate", Data: p7}},
		},
		{
			name:    "objectGUID of the wrong length",
			anchor:  "objectGUID",
			attrs:   []*ldap.EntryAttribute{attr("objectGUID", guid[:15])},
			wantErr: "objectGUID is 15 bytes, want 16",
		},
		{
			name:    "no anchor",
			anchor:  "employeeNumber",
			attrs:   []*ldap.EntryAttribute{attr("mail", []byte("a@x"))},
			wantErr: "no employeeNumber value",
		},
		{
			name:    "empty text anchor",
			anchor:  "employeeNumber",
			attrs:   []*ldap.EntryAttribute{attr("employeeNumber", []byte{})},
			wantErr: "empty employeeNumber value",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := converterFor(t, tc.anchor).user(&ldap.Entry{DN: "cn=a,dc=x", Attributes: tc.attrs})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Anchor != tc.wantAnchor || u.DN != "cn=a,dc=x" {
				t.Errorf("anchor %q DN %q, want %q", u.Anchor, u.DN, tc.wantAnchor)
			}
			if len(u.Attributes) != len(tc.wantAttrs) {
				t.Errorf("attributes %v, want %v", u.Attributes, tc.wantAttrs)
			}
			for k, v := range tc.wantAttrs {
				if u.Attributes[k] != v {
					t.Errorf("attribute %s = %q, want %q", k, u.Attributes[k], v)
				}
			}
			if len(u.Values) != len(tc.wantValues) {
				t.Fatalf("%d values, want %d", len(u.Values), len(tc.wantValues))
			}
			for i, v := range u.Values {
				if v.Attribute != tc.wantValues[i].Attribute || !bytes.Equal(v.Data, tc.wantValues[i].Data) {
					t.Errorf("value %d = %s %x, want %s %x", i, v.Attribute, v.Data, tc.wantValues[i].Attribute, tc.wantValues[i].Data)
				}
			}
		})
	}
}

func TestRequestedAttributes(t *testing.T) {
	cfg, _, err := Config{URL: "ldap://dc01", BaseDN: "dc=x", AnchorAttribute: "entryUUID",
		IdentityAttributes: []string{"mail", "uid", "MAIL"}, Bind: Bind{Username: "u", Password: "p"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(requestedAttributes(cfg), ",")
	if want := "entryUUID,mail,uid,userCertificate,userSMIMECertificate"; got != want {
		t.Errorf("requested %s, want %s", got, want)
	}
}

// FuzzConverter feeds attribute names and values as a directory could send
// them: no panic, certificate values passed on byte for byte, an anchor
// only from a well-formed value.
func FuzzConverter(f *testing.F) {
	f.Add("userCertificate;binary", []byte{0x30, 0x03}, true)
	f.Add("objectGUID", make([]byte, 16), true)
	f.Add("objectGUID", []byte{1}, true)
	f.Add("entryUUID", []byte("x"), false)
	f.Add("USERSMIMECERTIFICATE;lang-en;binary", []byte{}, false)
	f.Fuzz(func(t *testing.T, name string, value []byte, guidAnchor bool) {
		anchor := "entryUUID"
		if guidAnchor {
			anchor = "objectGUID"
		}
		c := converterFor(t, anchor)
		u, err := c.user(&ldap.Entry{DN: "cn=f", Attributes: []*ldap.EntryAttribute{attr(name, value)}})
		base := baseName(name)
		isAnchor := strings.EqualFold(base, anchor)
		if err == nil && !isAnchor {
			t.Fatalf("anchor %q from attribute %q", u.Anchor, name)
		}
		if err == nil && guidAnchor && len(value) != guidLen {
			t.Fatalf("objectGUID anchor from %d bytes", len(value))
		}
		if isAnchor {
			return
		}
		isCert := strings.EqualFold(base, mapping.AttrUserCertificate) || strings.EqualFold(base, mapping.AttrUserSMIMECertificate)
		if isCert != (len(u.Values) == 1) {
			t.Fatalf("attribute %q gave %d values", name, len(u.Values))
		}
		if isCert && !bytes.Equal(u.Values[0].Data, value) {
			t.Fatalf("value changed: %x → %x", value, u.Values[0].Data)
		}
	})
}
