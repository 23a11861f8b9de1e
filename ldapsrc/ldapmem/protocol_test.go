package ldapmem

import (
	"bytes"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

func testDirectory(t testing.TB) *directory {
	t.Helper()
	d, err := newDirectory(Options{BindDN: "cn=reader,dc=x", BindPassword: "pw", Entries: []Entry{
		{DN: "dc=x", Attributes: map[string][][]byte{"objectClass": {[]byte("domain")}}},
		{DN: "uid=a,dc=x", Attributes: map[string][][]byte{"uid": {[]byte("a")}, "userCertificate;binary": {{0x30, 0x00}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func bindRequest(id int64, dn, pw string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationBindRequest, nil, "")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(3), ""))
	op.AppendChild(octets(dn))
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, pw, ""))
	return message(id, op)
}

func searchRequestPacket(id int64, base, filter string, controls ...*ber.Packet) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchRequest, nil, "")
	op.AppendChild(octets(base))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(ldap.ScopeWholeSubtree), ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(0), ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), ""))
	op.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, ""))
	f, err := ldap.CompileFilter(filter)
	if err != nil {
		panic(err)
	}
	op.AppendChild(f)
	op.AppendChild(ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, ""))
	return message(id, op, controls...)
}

// decoded round-trips p through its bytes, as a client's message arrives.
func decoded(t testing.TB, p *ber.Packet) *ber.Packet {
	t.Helper()
	q, err := readMessage(bytes.NewReader(p.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// resultOf returns the last answer's operation tag and result code.
func resultOf(t *testing.T, out []*ber.Packet) (ber.Tag, int64) {
	t.Helper()
	if len(out) == 0 {
		t.Fatal("no answer")
	}
	op := out[len(out)-1].Children[1]
	code, _ := op.Children[0].Value.(int64)
	return op.Tag, code
}

func TestProtocol(t *testing.T) {
	critical := ldap.NewControlString("1.2.840.113556.1.4.528", true, "")
	optional := ldap.NewControlString("1.2.840.113556.1.4.801", false, "")
	other := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationModifyRequest, nil, "")
	tests := []struct {
		name     string
		msg      *ber.Packet
		wantTag  ber.Tag
		wantCode int64
		wantEnd  bool
	}{
		{"search before bind", searchRequestPacket(1, "dc=x", "(uid=a)"), ldap.ApplicationSearchResultDone, ldap.LDAPResultInsufficientAccessRights, false},
		{"wrong password", bindRequest(2, "cn=reader,dc=x", "no"), ldap.ApplicationBindResponse, ldap.LDAPResultInvalidCredentials, false},
		{"bind", bindRequest(3, "CN=Reader,DC=x", "pw"), ldap.ApplicationBindResponse, ldap.LDAPResultSuccess, false},
		{"search", searchRequestPacket(4, "dc=x", "(uid=a)"), ldap.ApplicationSearchResultDone, ldap.LDAPResultSuccess, false},
		{"critical control refused", searchRequestPacket(5, "dc=x", "(uid=a)", critical.Encode()), ldap.ApplicationSearchResultDone, ldap.LDAPResultUnavailableCriticalExtension, false},
		{"optional control ignored", searchRequestPacket(6, "dc=x", "(uid=a)", optional.Encode()), ldap.ApplicationSearchResultDone, ldap.LDAPResultSuccess, false},
		{"modify refused", message(7, other), ldap.ApplicationModifyResponse, ldap.LDAPResultUnwillingToPerform, false},
		{"not an LDAPMessage", ber.NewSequence("junk"), ldap.ApplicationExtendedResponse, ldap.LDAPResultProtocolError, true},
	}
	s := &session{dir: testDirectory(t)}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, end := s.handle(decoded(t, tc.msg))
			tag, code := resultOf(t, out)
			if tag != tc.wantTag || code != tc.wantCode || end != tc.wantEnd {
				t.Errorf("answer tag %d code %d end %v, want tag %d code %d end %v", tag, code, end, tc.wantTag, tc.wantCode, tc.wantEnd)
			}
		})
	}
	if out, _ := s.handle(decoded(t, searchRequestPacket(8, "dc=x", "(uid=a)"))); len(out) != 2 {
		t.Errorf("search for one entry: %d messages, want the entry and its done", len(out))
	}
}

func TestReadMessageLimits(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"not a sequence", []byte{0x04, 0x00}, "not a SEQUENCE"},
		{"indefinite length", []byte{0x30, 0x80}, "not supported"},
		{"over the limit", []byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff}, "over the limit"},
		{"truncated", []byte{0x30, 0x05, 0x02}, "EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readMessage(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("readMessage(% x) = %v, want an error saying %q", tc.in, err, tc.want)
			}
		})
	}
}

// FuzzHandle feeds client bytes to the message reader and the protocol
// handler of a bound session: whatever arrives, no panic, and every
// answer that is not a disconnection carries the request's messageID.
func FuzzHandle(f *testing.F) {
	paging := ldap.NewControlPaging(1)
	paging.SetCookie([]byte("1"))
	for _, p := range []*ber.Packet{
		bindRequest(1, "cn=reader,dc=x", "pw"),
		searchRequestPacket(2, "dc=x", "(&(uid=a)(userCertificate=*))"),
		searchRequestPacket(3, "", "(objectClass=*)", paging.Encode()),
		searchRequestPacket(4, "dc=x", "(|(uid=a*)(!(uid=b)))", ldap.NewControlString("1.2.3", true, "").Encode()),
	} {
		f.Add(p.Bytes())
	}
	d := testDirectory(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := readMessage(bytes.NewReader(data))
		if err != nil {
			return
		}
		s := &session{dir: d, bound: true}
		out, _ := s.handle(p)
		for _, m := range out {
			if _, err := ber.DecodePacketErr(m.Bytes()); err != nil {
				t.Fatalf("answer does not decode: %v", err)
			}
		}
	})
}
