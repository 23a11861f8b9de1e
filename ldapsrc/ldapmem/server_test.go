package ldapmem_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc/ldapmem"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping/pkitest"
)

type memoryServer struct {
	*ldapmem.Server
	roots *x509.CertPool
}

func startMemory(t *testing.T, opts ldapmem.Options) memoryServer {
	t.Helper()
	ca, err := pkitest.NewRootCA("memory CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServerTLS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	opts.Logger = zaptest.NewLogger(t)
	m, err := ldapmem.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return memoryServer{m, roots}
}

func (m memoryServer) dial(t *testing.T) *ldap.Conn {
	t.Helper()
	conn, err := ldap.DialURL(m.URL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: m.roots, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

const (
	memBindDN = "cn=reader,dc=example,dc=test"
	memPW     = "pw"
	people    = "ou=people,dc=example,dc=test"
)

func memPeople(n int) []ldapmem.Entry {
	out := []ldapmem.Entry{{DN: people, Attributes: map[string][][]byte{"objectClass": {[]byte("organizationalUnit")}, "ou": {[]byte("people")}}}}
	for i := range n {
		out = append(out, ldaptest.PersonEntry(people, ldaptest.Person{UID: string(rune('a'+i)) + "user", Mail: string(rune('a'+i)) + "@example.test"}))
	}
	return out
}

func TestServer(t *testing.T) {
	m := startMemory(t, ldapmem.Options{BindDN: memBindDN, BindPassword: memPW, Entries: memPeople(7)})
	conn := m.dial(t)

	search := func(base string, scope int, filter string, attrs ...string) (*ldap.SearchResult, error) {
		return conn.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
	}
	if _, err := search(people, ldap.ScopeWholeSubtree, "(objectClass=*)"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Errorf("search before bind: %v, want insufficient access", err)
	}
	if err := conn.Bind(memBindDN, "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind with a wrong password: %v, want invalid credentials", err)
	}
	if err := conn.Bind("CN=Reader,DC=example,DC=test", memPW); err != nil {
		t.Fatalf("bind: %v", err)
	}

	tests := []struct {
		name   string
		base   string
		scope  int
		filter string
		want   int
		code   uint16
	}{
		{"subtree", people, ldap.ScopeWholeSubtree, "(objectClass=*)", 8, 0},
		{"one level", people, ldap.ScopeSingleLevel, "(objectClass=*)", 7, 0},
		{"base", people, ldap.ScopeBaseObject, "(objectClass=*)", 1, 0},
		{"filter", people, ldap.ScopeWholeSubtree, "(|(uid=auser)(mail=c@example.test))", 2, 0},
		{"filter none", people, ldap.ScopeWholeSubtree, "(uid=nobody)", 0, 0},
		{"base under suffix", "dc=example,dc=test", ldap.ScopeWholeSubtree, "(uid=buser)", 1, 0},
		{"no such base", "ou=nowhere,dc=example,dc=test", ldap.ScopeWholeSubtree, "(objectClass=*)", 0, ldap.LDAPResultNoSuchObject},
		{"extensible filter refused", people, ldap.ScopeWholeSubtree, "(uid:caseExactMatch:=auser)", 0, ldap.LDAPResultUnwillingToPerform},
		{"rootDSE", "", ldap.ScopeBaseObject, "(objectClass=*)", 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := search(tc.base, tc.scope, tc.filter)
			if tc.code != 0 {
				if !ldap.IsErrorWithCode(err, tc.code) {
					t.Fatalf("err = %v, want code %d", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Entries) != tc.want {
				t.Errorf("%d entries, want %d", len(res.Entries), tc.want)
			}
		})
	}

	t.Run("attributes", func(t *testing.T) {
		res, err := search(ldaptest.PersonDN(people, ldaptest.Person{UID: "auser"}), ldap.ScopeBaseObject, "(objectClass=*)", "mail")
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("%v, %d entries", err, len(res.Entries))
		}
		if e := res.Entries[0]; len(e.Attributes) != 1 || e.GetAttributeValue("mail") != "a@example.test" {
			t.Errorf("asked for mail only, got %d attributes", len(e.Attributes))
		}
		res, err = search(people, ldap.ScopeSingleLevel, "(uid=auser)")
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("%v", err)
		}
		if res.Entries[0].GetAttributeValue("entryUUID") != "" || res.Entries[0].GetAttributeValue("uid") != "auser" {
			t.Errorf("all user attributes but no operational ones expected")
		}
		res, err = search(people, ldap.ScopeSingleLevel, "(uid=auser)", "entryUUID")
		if err != nil || len(res.Entries) != 1 || len(res.Entries[0].GetAttributeValue("entryUUID")) != 36 {
			t.Errorf("entryUUID asked by name: %v", err)
		}
	})

	t.Run("paging", func(t *testing.T) {
		res, err := conn.SearchWithPaging(ldap.NewSearchRequest(people, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=inetOrgPerson)", []string{"uid"}, nil), 3)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range res.Entries {
			seen[e.DN] = true
		}
		if len(res.Entries) != 7 || len(seen) != 7 {
			t.Errorf("%d entries (%d distinct) over pages of 3, want 7", len(res.Entries), len(seen))
		}
	})

	t.Run("size limit", func(t *testing.T) {
		res, err := conn.Search(ldap.NewSearchRequest(people, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 2, 0, false,
			"(objectClass=*)", nil, nil))
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || len(res.Entries) != 2 {
			t.Errorf("size limit 2: %v, %d entries", err, len(res.Entries))
		}
	})
}

// Close must not wait for clients that keep their connection open.
func TestCloseWithOpenClient(t *testing.T) {
	m := startMemory(t, ldapmem.Options{BindDN: memBindDN, BindPassword: memPW, Entries: memPeople(1)})
	conn := m.dial(t)
	if err := conn.Bind(memBindDN, memPW); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs while a client is connected")
	}
	addr := m.URL[len("ldaps://"):]
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("still accepting on %s after Close", addr)
	}
}

func TestStartNeedsTLS(t *testing.T) {
	if _, err := ldapmem.Start(context.Background(), ldapmem.Options{BindDN: memBindDN, BindPassword: memPW}); err == nil {
		t.Fatal("Start without TLS succeeded")
	}
}
