package ldapsrc_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

const (
	suffix   = "dc=example,dc=test"
	peopleDN = "ou=people," + suffix
	staff    = 25
	// noNumber is the staff member without employeeNumber.
	noNumber    = "p07"
	sharedMail  = "shared@example.test"
	staffFilter = "(employeeType=staff)"
)

// dataset is the directory every server of the table holds: 25 staff
// (p00..p24), two contractors sharing one mail (c1, c2), certificates on
// a few people.
type dataset struct {
	people []ldaptest.Person
	// want are the certificate values each uid must come back with.
	want map[string][]mapping.RawValue
}

func newDataset(t testing.TB) dataset {
	t.Helper()
	ca, err := pkitest.NewRootCA("people CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string) *x509.Certificate {
		c, _, err := ca.Issue(pkitest.LeafOptions{CommonName: cn, Email: cn + "@example.test"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b, c := issue("p03 a"), issue("p03 b"), issue("p04")
	p7, err := pkitest.DegeneratePKCS7(a, ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	odd := []byte{0x00, 0xff, 0x30, '\n', ' ', ':', 0x80} // any bytes survive userSMIMECertificate

	d := dataset{want: map[string][]mapping.RawValue{}}
	for i := range staff {
		uid := fmt.Sprintf("p%02d", i)
		p := ldaptest.Person{UID: uid, Mail: uid + "@example.test",
			Attributes: map[string][]string{"employeeType": {"staff"}, "employeeNumber": {fmt.Sprint(1000 + i)}}}
		if uid == noNumber {
			delete(p.Attributes, "employeeNumber")
		}
		switch uid {
		case "p03":
			p.UserCertificates = [][]byte{a.Raw, b.Raw}
			p.SMIMECertificates = [][]byte{p7}
			d.want[uid] = []mapping.RawValue{
				{Attribute: mapping.AttrUserCertificate, Data: a.Raw},
				{Attribute: mapping.AttrUserCertificate, Data: b.Raw},
				{Attribute: mapping.AttrUserSMIMECertificate, Data: p7},
			}
		case "p04":
			p.SMIMECertificates = [][]byte{c.Raw}
			d.want[uid] = []mapping.RawValue{{Attribute: mapping.AttrUserSMIMECertificate, Data: c.Raw}}
		case "p05":
			p.SMIMECertificates = [][]byte{odd}
			d.want[uid] = []mapping.RawValue{{Attribute: mapping.AttrUserSMIMECertificate, Data: odd}}
		}
		d.people = append(d.people, p)
	}
	for _, uid := range []string{"c1", "c2"} {
		d.people = append(d.people, ldaptest.Person{UID: uid, Mail: sharedMail,
			Attributes: map[string][]string{"employeeType": {"contractor"}, "employeeNumber": {"9" + uid}}})
	}
	return d
}

// server is one directory of the table, holding the dataset.
type server struct {
	name string
	// urls are every way to reach the server; url is the one tests use.
	urls     []string
	url      string
	roots    *x509.CertPool
	bindDN   string
	password string
}

// servers starts a real slapd and an in-process Memory directory with the
// same data.
func servers(t *testing.T, d dataset) []server {
	t.Helper()
	var seed []byte
	for _, p := range d.people {
		seed = append(seed, ldaptest.PersonLDIF(peopleDN, p)...)
	}
	s := ldaptest.StartSlapd(t, ldaptest.SlapdOptions{Suffix: suffix, SeedLDIF: seed})
	if s.PeopleDN != peopleDN {
		t.Fatalf("slapd people DN %q, want %q", s.PeopleDN, peopleDN)
	}
	return []server{
		{name: "slapd", urls: []string{s.URL, s.LDAPSURL}, url: s.URL, roots: s.RootCAs, bindDN: s.AdminDN, password: s.AdminPassword},
		startMemory(t, d, false),
	}
}

func startMemory(t *testing.T, d dataset, noPaging bool, tweaks ...func(*ldaptest.MemoryOptions)) server {
	t.Helper()
	entries := []ldaptest.Entry{{DN: peopleDN, Attributes: map[string][][]byte{
		"objectClass": {[]byte("organizationalUnit")}, "ou": {[]byte("people")}}}}
	for _, p := range d.people {
		entries = append(entries, ldaptest.PersonEntry(peopleDN, p))
	}
	return startMemoryEntries(t, entries, noPaging, tweaks...)
}

func startMemoryEntries(t *testing.T, entries []ldaptest.Entry, noPaging bool, tweaks ...func(*ldaptest.MemoryOptions)) server {
	t.Helper()
	ca, err := pkitest.NewRootCA("memory CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServerTLS("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	const bindDN, pw = "cn=certsync,ou=services," + suffix, "memory-secret"
	opts := ldaptest.MemoryOptions{
		TLS:    &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		BindDN: bindDN, BindPassword: pw, Entries: entries, Logger: zaptest.NewLogger(t), NoPaging: noPaging,
	}
	for _, tw := range tweaks {
		tw(&opts)
	}
	m, err := ldaptest.StartMemory(context.Background(), opts)
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
	name := "memory"
	if noPaging {
		name = "memory without paging"
	}
	return server{name: name, urls: []string{m.URL}, url: m.URL, roots: roots, bindDN: bindDN, password: pw}
}

// config is a working configuration for srv, tuned by the test.
func (srv server) config() ldapsrc.Config {
	return ldapsrc.Config{
		URL:             srv.url,
		BaseDN:          suffix,
		Filter:          staffFilter,
		AnchorAttribute: "entryUUID",
		PageSize:        10,
		Bind:            ldapsrc.Bind{Username: srv.bindDN, Password: srv.password},
		TLS:             ldapsrc.TLS{RootCAs: srv.roots},
		DialTimeout:     5 * time.Second,
		OpTimeout:       30 * time.Second,
	}
}

func (srv server) open(t *testing.T, cfg ldapsrc.Config) *ldapsrc.Source {
	t.Helper()
	s, err := ldapsrc.Open(context.Background(), cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open %s: %v", cfg.URL, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// readAll collects every user of a Users read, by uid.
func readAll(t *testing.T, s *ldapsrc.Source) (map[string]mapping.SourceUser, ldapsrc.Stats) {
	t.Helper()
	got := map[string]mapping.SourceUser{}
	st, err := s.Users(context.Background(), func(u mapping.SourceUser) error {
		uid := u.Attr("uid")
		if _, dup := got[uid]; dup {
			t.Errorf("uid %q passed twice", uid)
		}
		got[uid] = u
		return nil
	})
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	return got, st
}

func equalValues(a, b []mapping.RawValue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Attribute != b[i].Attribute || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}
