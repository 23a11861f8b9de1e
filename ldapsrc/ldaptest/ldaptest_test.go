package ldaptest_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping/pkitest"
)

func leaf(t testing.TB, ca *pkitest.CA, cn string) *x509.Certificate {
	t.Helper()
	c, _, err := ca.Issue(pkitest.LeafOptions{CommonName: cn, Email: cn + "@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStartSlapd(t *testing.T) {
	ca, err := pkitest.NewRootCA("people CA")
	if err != nil {
		t.Fatal(err)
	}
	cert := leaf(t, ca, "alice")
	smime := []byte{0x00, 0xff, 0x30, '\n', ' ', ':'} // any bytes: userSMIMECertificate has Binary syntax
	alice := ldaptest.Person{UID: "alice", Mail: "alice@example.test",
		UserCertificates: [][]byte{cert.Raw}, SMIMECertificates: [][]byte{smime},
		Attributes: map[string][]string{"employeeNumber": {"7"}}}
	s := ldaptest.StartSlapd(t, ldaptest.SlapdOptions{SeedLDIF: ldaptest.PersonLDIF("ou=people,dc=example,dc=test", alice)})

	if s.BaseDN != "dc=example,dc=test" || s.PeopleDN != "ou=people,dc=example,dc=test" {
		t.Errorf("BaseDN %q PeopleDN %q", s.BaseDN, s.PeopleDN)
	}
	if pem, err := os.ReadFile(s.CAFile); err != nil || !bytes.Equal(pem, s.CAPEM) {
		t.Errorf("CAFile %s: %v, equal to CAPEM: %v", s.CAFile, err, bytes.Equal(pem, s.CAPEM))
	}

	res, err := s.Admin(t).Search(ldap.NewSearchRequest(s.PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=alice)", []string{"userCertificate", "userSMIMECertificate", "employeeNumber", "entryUUID"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 1 {
		t.Fatalf("%d entries for uid=alice, want 1", len(res.Entries))
	}
	e := res.Entries[0]
	if e.DN != ldaptest.PersonDN(s.PeopleDN, alice) {
		t.Errorf("DN %q, want %q", e.DN, ldaptest.PersonDN(s.PeopleDN, alice))
	}
	// OpenLDAP names certificate values with the ;binary option: the
	// reason ldapsrc matches names without options.
	if got := e.GetRawAttributeValues("userCertificate;binary"); len(got) != 1 || !bytes.Equal(got[0], cert.Raw) {
		t.Errorf("userCertificate;binary = %d values, want the certificate", len(got))
	}
	if got := e.GetRawAttributeValues("userSMIMECertificate"); len(got) != 1 || !bytes.Equal(got[0], smime) {
		t.Errorf("userSMIMECertificate = %x, want %x", got, smime)
	}
	if e.GetAttributeValue("employeeNumber") != "7" || e.GetAttributeValue("entryUUID") == "" {
		t.Errorf("employeeNumber %q entryUUID %q", e.GetAttributeValue("employeeNumber"), e.GetAttributeValue("entryUUID"))
	}

	// LDAPS answers with the same CA.
	conn, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatalf("LDAPS: %v", err)
	}
	defer conn.Close()
	if err := conn.Bind(s.AdminDN, s.AdminPassword); err != nil {
		t.Fatalf("LDAPS bind: %v", err)
	}
}

// Several servers at once get distinct ports.
func TestStartSlapdParallel(t *testing.T) {
	urls := make(chan string, 3)
	for i := range 3 {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			s := ldaptest.StartSlapd(t, ldaptest.SlapdOptions{Suffix: "o=org" + string(rune('a'+i))})
			urls <- s.URL
			s.Admin(t)
		})
	}
	t.Cleanup(func() {
		close(urls)
		seen := map[string]bool{}
		for u := range urls {
			if seen[u] {
				t.Errorf("two servers on %s", u)
			}
			seen[u] = true
		}
	})
}

func TestPersonLDIF(t *testing.T) {
	got := string(ldaptest.PersonLDIF("ou=people,dc=x", ldaptest.Person{UID: "bob", Mail: "bob@x",
		UserCertificates: [][]byte{{1, 2, 3}}, SMIMECertificates: [][]byte{[]byte("abc")},
		Attributes: map[string][]string{"employeeType": {"staff"}, "description": {" leading space"}}}))
	want := "dn: uid=bob,ou=people,dc=x\n" +
		"objectClass: inetOrgPerson\nuid: bob\ncn: bob\nsn: bob\nmail: bob@x\n" +
		"userCertificate;binary:: AQID\nuserSMIMECertificate:: YWJj\n" +
		"description:: IGxlYWRpbmcgc3BhY2U=\nemployeeType: staff\n\n"
	if got != want {
		t.Errorf("PersonLDIF:\n%s\nwant:\n%s", got, want)
	}
}
