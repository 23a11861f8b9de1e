package ldapsrc_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
)

// A read that could not see every user in scope is incomplete, never a
// smaller directory: a part of the scope referred to another server,
// entries whose anchor the account may not read (real slapd, its ACLs).
func TestReadThatCannotSeeEverythingIsIncomplete(t *testing.T) {
	const reader = "cn=reader," + suffix
	people := "dn: uid=ann," + peopleDN + "\nobjectClass: inetOrgPerson\nuid: ann\ncn: ann\nsn: ann\nemployeeType: staff\n\n" +
		"dn: " + reader + "\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: reader-secret\n\n"
	for _, tc := range []struct {
		name   string
		seed   string
		access []string
		want   string
	}{
		{"referral in scope", "dn: ou=elsewhere," + peopleDN + "\nobjectClass: referral\nobjectClass: extensibleObject\nou: elsewhere\nref: ldap://other.example.test/ou=elsewhere,ou=people,dc=example,dc=test\n\n",
			nil, "1 referrals to parts of the scope on other servers, not followed (first: ldap://other.example.test/"},
		{"anchor unreadable", "", []string{`attrs=entryUUID by dn.exact="` + reader + `" none by * read`, "* by * read"},
			"1 entries show no usable entryUUID (first: uid=ann,ou=people,dc=example,dc=test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ldaptest.StartSlapd(t, ldaptest.SlapdOptions{Suffix: suffix, SeedLDIF: []byte(people + tc.seed), Access: tc.access})
			srv := server{url: s.URL, roots: s.RootCAs, bindDN: reader, password: "reader-secret"}
			src := srv.open(t, srv.config())
			var got []string
			res, err := src.Read(context.Background(), ldapsrc.ReadRequest{}, func(u mapping.SourceUser) error {
				got = append(got, u.DN)
				return nil
			})
			if !errors.Is(err, ldapsrc.ErrIncompleteRead) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read: %v (users %v); want ErrIncompleteRead with %q", err, got, tc.want)
			}
			if res.Next != nil {
				t.Fatalf("an incomplete read returned a watermark")
			}
		})
	}
}
