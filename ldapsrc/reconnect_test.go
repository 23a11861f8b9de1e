package ldapsrc

import (
	"context"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
)

// A connection the server dropped (Active Directory closes idle ones) is
// replaced on the next call; a closed Source stays closed.
func TestReconnect(t *testing.T) {
	s := ldaptest.StartSlapd(t, ldaptest.SlapdOptions{
		SeedLDIF: ldaptest.PersonLDIF("ou=people,dc=example,dc=test", ldaptest.Person{UID: "alice", Mail: "alice@example.test"}),
	})
	src, err := Open(context.Background(), Config{
		URL: s.URL, BaseDN: s.BaseDN, Filter: "(objectClass=inetOrgPerson)", AnchorAttribute: "entryUUID",
		Bind: Bind{Username: s.AdminDN, Password: s.AdminPassword}, TLS: TLS{RootCAs: s.RootCAs},
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	count := func() (int, error) {
		n := 0
		_, err := src.Users(context.Background(), func(mapping.SourceUser) error { n++; return nil })
		return n, err
	}

	first := src.conn
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := count(); err != nil || n != 1 {
		t.Fatalf("Users after the connection dropped: %d users, %v", n, err)
	}
	if src.conn == first {
		t.Error("connection not replaced")
	}
	if _, err := src.FindUser(context.Background(), "alice@example.test"); err != nil {
		t.Errorf("FindUser on the new connection: %v", err)
	}

	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := count(); err == nil {
		t.Error("Users on a closed Source succeeded")
	}
}
