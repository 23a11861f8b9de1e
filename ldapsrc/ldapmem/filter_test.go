package ldapmem

import (
	"errors"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

func testEntry() *memEntry {
	e := memEntry{dn: "uid=alice,ou=people,dc=example,dc=test", attrs: []entryAttr{
		{"objectClass", [][]byte{[]byte("inetOrgPerson")}},
		{"uid", [][]byte{[]byte("alice")}},
		{"mail", [][]byte{[]byte("Alice@Example.Test")}},
		{"employeeNumber", [][]byte{[]byte("42")}},
		{"userCertificate;binary", [][]byte{{0x30, 0x82, 0x01}}},
	}}
	return &e
}

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		{"(uid=alice)", true},
		{"(uid=ALICE)", true},
		{"(uid=bob)", false},
		{"(mail=alice@example.test)", true},
		{"(mail=*)", true},
		{"(telephoneNumber=*)", false},
		{"(objectClass=*)", true},
		{"(userCertificate=*)", true}, // stored as userCertificate;binary
		{"(&(uid=alice)(mail=*))", true},
		{"(&(uid=alice)(sn=*))", false},
		{"(|(uid=bob)(mail=alice@example.test))", true},
		{"(|(uid=bob)(uid=carol))", false},
		{"(!(uid=bob))", true},
		{"(!(uid=alice))", false},
		{"(uid=al*)", true},
		{"(uid=*ic*)", true},
		{"(uid=*ce)", true},
		{"(uid=a*i*e)", true},
		{"(uid=a*x*e)", false},
		{"(uid=*li)", false},
		{"(employeeNumber>=5)", true}, // numeric, not "42" < "5"
		{"(employeeNumber<=41)", false},
		{"(employeeNumber<=42)", true},
		{"(uid~=ALICE)", true},
		{`(uid=al\2a)`, false}, // an escaped '*' is a literal, not a wildcard
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := ldap.CompileFilter(tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			got, err := matchFilter(f, testEntry())
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("matchFilter(%s) = %v, want %v", tc.filter, got, tc.want)
			}
		})
	}
}

func TestMatchFilterUnsupported(t *testing.T) {
	f, err := ldap.CompileFilter("(uid:caseExactMatch:=alice)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := matchFilter(f, testEntry()); !errors.Is(err, errUnsupportedFilter) {
		t.Fatalf("extensible match: err = %v, want errUnsupportedFilter", err)
	}
}

// FuzzMatchFilter feeds client filters (bytes from the network, as the server
// decompiles them) to the evaluator: it must not panic, and a filter must
// give the same answer after the decompile/compile round trip the server makes.
func FuzzMatchFilter(f *testing.F) {
	for _, s := range []string{"(uid=alice)", "(&(uid=a*)(!(mail=x)))", "(|(a=b)(c>=1))", "(uid=*)", `(cn=\00\ff)`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		p, err := ldap.CompileFilter(filter)
		if err != nil {
			return
		}
		got, err := matchFilter(p, testEntry())
		if err != nil {
			return
		}
		text, err := ldap.DecompileFilter(p)
		if err != nil {
			return
		}
		p2, err := ldap.CompileFilter(text)
		if err != nil {
			return
		}
		again, err := matchFilter(p2, testEntry())
		if err != nil {
			t.Fatalf("%q → %q: %v", filter, text, err)
		}
		if got != again {
			t.Fatalf("%q = %v but its round trip %q = %v", filter, got, text, again)
		}
	})
}

// TestMatchFilterEmptySubstring: go-ldap encodes "(uid=**)" as a
// substrings filter without a component, which decompiles to "(uid=)":
// no valid filter, refused rather than matched (FuzzMatchFilter found the
// two answering differently); so is an empty component, which a client
// can send in raw BER.
func TestMatchFilterEmptySubstring(t *testing.T) {
	none, err := ldap.CompileFilter("(uid=**)")
	if err != nil {
		t.Fatal(err)
	}
	empty, err := ldap.CompileFilter("(uid=a*e)")
	if err != nil {
		t.Fatal(err)
	}
	empty.Children[1].Children[0].Data.Reset()
	for name, f := range map[string]*ber.Packet{"no component": none, "an empty component": empty} {
		if got, err := matchFilter(f, testEntry()); err == nil || !strings.Contains(err.Error(), "malformed substrings filter: "+name) {
			t.Errorf("%s: matchFilter = %v, %v; want a malformed-filter error", name, got, err)
		}
	}
}
