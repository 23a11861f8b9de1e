package ldapsrc_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// TestSource runs the same behaviours against a real slapd and the
// in-process Memory directory.
func TestSource(t *testing.T) {
	d := newDataset(t)
	for _, srv := range servers(t, d) {
		t.Run(srv.name, func(t *testing.T) {
			t.Run("connect", func(t *testing.T) { testConnect(t, srv) })
			t.Run("bind", func(t *testing.T) { testBind(t, srv) })
			t.Run("paging", func(t *testing.T) { testPaging(t, srv) })
			t.Run("values", func(t *testing.T) { testValues(t, srv, d) })
			t.Run("filter", func(t *testing.T) { testFilter(t, srv) })
			t.Run("anchor", func(t *testing.T) { testAnchor(t, srv) })
			t.Run("stop", func(t *testing.T) { testStop(t, srv) })
			t.Run("find", func(t *testing.T) { testFind(t, srv) })
		})
	}
}

func testConnect(t *testing.T, srv server) {
	otherCA, err := pkitest.NewRootCA("someone else")
	if err != nil {
		t.Fatal(err)
	}
	otherRoots := x509.NewCertPool()
	otherRoots.AddCert(otherCA.Cert)

	type tc struct {
		name    string
		tune    func(*ldapsrc.Config)
		wantErr []string // substrings of the error; none: Open succeeds
	}
	var tests []tc
	for _, u := range srv.urls {
		tests = append(tests,
			tc{name: u, tune: func(c *ldapsrc.Config) { c.URL = u }},
			tc{name: u + " wrong CA", tune: func(c *ldapsrc.Config) { c.URL = u; c.TLS.RootCAs = otherRoots },
				wantErr: []string{"certificate verification failed", `name "127.0.0.1"`, u, "unknown authority"}},
			tc{name: u + " system roots", tune: func(c *ldapsrc.Config) { c.URL = u; c.TLS.RootCAs = nil },
				wantErr: []string{"certificate verification failed", u}},
			tc{name: u + " wrong name", tune: func(c *ldapsrc.Config) { c.URL = u; c.TLS.ServerName = "dc01.example.test" },
				wantErr: []string{"certificate verification failed", `name "dc01.example.test"`}},
			tc{name: u + " localhost", tune: func(c *ldapsrc.Config) { c.URL = strings.Replace(u, "127.0.0.1", "localhost", 1) }},
		)
	}
	if !strings.HasPrefix(srv.url, "ldap://") {
		// An LDAPS-only port must not be talked to in the clear.
		plain := "ldap://" + strings.TrimPrefix(srv.url, "ldaps://")
		tests = append(tests, tc{name: plain + " (LDAPS port)", tune: func(c *ldapsrc.Config) { c.URL = plain },
			wantErr: []string{"StartTLS with " + plain}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := srv.config()
			tc.tune(&cfg)
			s, err := ldapsrc.Open(context.Background(), cfg, zaptest.NewLogger(t))
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func testBind(t *testing.T, srv server) {
	cfg := srv.config()
	cfg.Bind.Password = "not-the-password"
	_, err := ldapsrc.Open(context.Background(), cfg, zaptest.NewLogger(t))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("Open with a wrong password: %v, want invalid credentials", err)
	}
	if want := "ldapsrc: bind as " + srv.bindDN + " to " + srv.url; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
	if strings.Contains(err.Error(), cfg.Bind.Password) {
		t.Errorf("error %q reveals the password", err)
	}
}

func testPaging(t *testing.T, srv server) {
	tests := []struct {
		pageSize, wantPages int
	}{
		{10, 3},
		{7, 4},
		{25, 1},
		{1000, 1},
		{1, 25},
	}
	if srv.name == "memory without paging" {
		tests = []struct{ pageSize, wantPages int }{{10, 1}, {1, 1}}
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("page size %d", tc.pageSize), func(t *testing.T) {
			cfg := srv.config()
			cfg.PageSize = tc.pageSize
			got, st := readAll(t, srv.open(t, cfg))
			want := ldapsrc.Stats{Entries: staff, Pages: tc.wantPages, Operations: tc.wantPages}
			if st != want {
				t.Errorf("Stats %+v, want %+v", st, want)
			}
			if len(got) != staff {
				t.Errorf("%d users, want %d", len(got), staff)
			}
		})
	}
}

func testValues(t *testing.T, srv server, d dataset) {
	got, _ := readAll(t, srv.open(t, srv.config()))
	for _, p := range d.people[:staff] {
		u, ok := got[p.UID]
		if !ok {
			t.Errorf("%s not read", p.UID)
			continue
		}
		if !equalValues(u.Values, d.want[p.UID]) {
			t.Errorf("%s values %s, want %s", p.UID, describe(u.Values), describe(d.want[p.UID]))
		}
		if u.DN != ldaptest.PersonDN(peopleDN, p) {
			t.Errorf("%s DN %q", p.UID, u.DN)
		}
		if u.Attr("mail") != p.Mail || u.Attributes["uid"] != p.UID {
			t.Errorf("%s attributes %v", p.UID, u.Attributes)
		}
		if u.Anchor == "" || u.Attributes["entryuuid"] != u.Anchor {
			t.Errorf("%s anchor %q, attributes %v", p.UID, u.Anchor, u.Attributes)
		}
	}
	anchors := map[string]bool{}
	for _, u := range got {
		anchors[u.Anchor] = true
	}
	if len(anchors) != len(got) {
		t.Errorf("%d distinct anchors for %d users", len(anchors), len(got))
	}
}

func describe(vs []mapping.RawValue) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%s(%d bytes)", v.Attribute, len(v.Data)))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func testFilter(t *testing.T, srv server) {
	tests := []struct {
		filter string
		want   []string
	}{
		{"(employeeType=contractor)", []string{"c1", "c2"}},
		{"(|(uid=p01)(mail=P02@EXAMPLE.TEST))", []string{"p01", "p02"}},
		{"(&(employeeType=staff)(!(uid=p0*))(!(uid=p1*)))", []string{"p20", "p21", "p22", "p23", "p24"}},
		{"(mail=" + sharedMail + ")", []string{"c1", "c2"}},
		{"(uid=nobody)", nil},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			cfg := srv.config()
			cfg.Filter = tc.filter
			got, st := readAll(t, srv.open(t, cfg))
			var uids []string
			for uid := range got {
				uids = append(uids, uid)
			}
			sort.Strings(uids)
			if strings.Join(uids, ",") != strings.Join(tc.want, ",") || st.Entries != len(tc.want) {
				t.Errorf("read %v (Stats %+v), want %v", uids, st, tc.want)
			}
		})
	}
}

func testAnchor(t *testing.T, srv server) {
	cfg := srv.config()
	cfg.AnchorAttribute = "employeeNumber"
	// An entry without its anchor cannot be told from a user that left:
	// the others are passed, and the read ends incomplete, naming it.
	got := map[string]mapping.SourceUser{}
	st, err := srv.open(t, cfg).Users(context.Background(), func(u mapping.SourceUser) error {
		got[u.Attr("uid")] = u
		return nil
	})
	if !errors.Is(err, ldapsrc.ErrIncompleteRead) || !strings.Contains(err.Error(), "uid="+noNumber+",") {
		t.Errorf("Users: %v, want ErrIncompleteRead naming %s", err, noNumber)
	}
	if want := (ldapsrc.Stats{Entries: staff, Pages: st.Pages, Operations: st.Pages, SkippedNoAnchor: 1}); st != want {
		t.Errorf("Stats %+v, want %+v", st, want)
	}
	if _, ok := got[noNumber]; ok || len(got) != staff-1 {
		t.Errorf("%d users passed (with %s: %v), want %d without it", len(got), noNumber, ok, staff-1)
	}
	if u := got["p12"]; u.Anchor != "1012" || u.Attributes["employeenumber"] != "1012" {
		t.Errorf("p12 anchor %q attributes %v", u.Anchor, u.Attributes)
	}
}

func testStop(t *testing.T, srv server) {
	if srv.name == "memory without paging" {
		return
	}
	s := srv.open(t, srv.config())
	errStop := errors.New("sink is full")

	t.Run("fn error", func(t *testing.T) {
		calls := 0
		st, err := s.Users(context.Background(), func(mapping.SourceUser) error {
			calls++
			if calls == 12 {
				return errStop
			}
			return nil
		})
		if !errors.Is(err, errStop) {
			t.Fatalf("Users: %v, want the fn error", err)
		}
		if calls != 12 || st.Pages != 2 {
			t.Errorf("%d calls over %d pages, want 12 over 2 (no page fetched after the error)", calls, st.Pages)
		}
		if !strings.Contains(err.Error(), "stopped at uid=") {
			t.Errorf("error %q does not name the entry", err)
		}
	})
	t.Run("cancel in fn", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		calls := 0
		_, err := s.Users(ctx, func(mapping.SourceUser) error {
			calls++
			if calls == 5 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Users: %v, want context.Canceled", err)
		}
		if calls != 5 {
			t.Errorf("%d calls, want none after the cancel", calls)
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		calls := 0
		_, err := s.Users(ctx, func(mapping.SourceUser) error { calls++; return nil })
		if !errors.Is(err, context.Canceled) || calls != 0 {
			t.Errorf("Users: %v after %d calls, want context.Canceled and none", err, calls)
		}
	})
	t.Run("read again", func(t *testing.T) {
		// The connection survives the stopped reads.
		if got, st := readAll(t, s); len(got) != staff || st.Pages != 3 {
			t.Errorf("%d users over %d pages, want %d over 3", len(got), st.Pages, staff)
		}
	})
}

func testFind(t *testing.T, srv server) {
	s := srv.open(t, srv.config())
	p08 := ldaptest.PersonDN(peopleDN, ldaptest.Person{UID: "p08"})
	tests := []struct {
		id          string
		wantUID     string
		wantInScope bool
		wantErr     error
	}{
		{id: "p05@example.test", wantUID: "p05", wantInScope: true},
		{id: "P05@Example.Test", wantUID: "p05", wantInScope: true},
		{id: "p06", wantUID: "p06", wantInScope: true},
		{id: p08, wantUID: "p08", wantInScope: true},
		{id: strings.ToUpper(p08), wantUID: "p08", wantInScope: true},
		{id: "c1", wantUID: "c1", wantInScope: false},
		{id: "nobody@example.test", wantErr: ldapsrc.ErrUserNotFound},
		{id: "uid=ghost," + peopleDN, wantErr: ldapsrc.ErrUserNotFound},
		{id: "uid=p08,ou=people,dc=elsewhere", wantErr: ldapsrc.ErrUserNotFound},
		{id: "p0*", wantErr: ldapsrc.ErrUserNotFound}, // escaped: not a wildcard
		{id: "*)(uid=p01", wantErr: ldapsrc.ErrUserNotFound},
		{id: sharedMail, wantErr: ldapsrc.ErrAmbiguousUser},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			f, err := s.FindUser(context.Background(), tc.id)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("FindUser: %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.id) {
					t.Errorf("error %q does not name the id", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FindUser: %v", err)
			}
			if f.User.Attr("uid") != tc.wantUID || f.InScope != tc.wantInScope {
				t.Errorf("found uid %q in scope %v, want %q in scope %v", f.User.Attr("uid"), f.InScope, tc.wantUID, tc.wantInScope)
			}
			if f.User.Anchor == "" || f.User.DN == "" {
				t.Errorf("found user without anchor or DN: %+v", f.User)
			}
		})
	}
	t.Run("ambiguity names the entries", func(t *testing.T) {
		_, err := s.FindUser(context.Background(), sharedMail)
		for _, uid := range []string{"c1", "c2"} {
			if dn := ldaptest.PersonDN(peopleDN, ldaptest.Person{UID: uid}); err == nil || !strings.Contains(err.Error(), dn) {
				t.Errorf("error %v does not name %s", err, dn)
			}
		}
	})
	t.Run("certificates", func(t *testing.T) {
		f, err := s.FindUser(context.Background(), "p03")
		if err != nil {
			t.Fatal(err)
		}
		if len(f.User.Values) != 3 || f.User.Values[0].Attribute != mapping.AttrUserCertificate {
			t.Errorf("p03 values %s", describe(f.User.Values))
		}
	})
}

// A server without paged-results support answers in one response; Users
// reads it whole.
func TestUsersServerWithoutPaging(t *testing.T) {
	srv := startMemory(t, newDataset(t), true)
	testPaging(t, srv)
}

// Active Directory's anchor: objectGUID, 16 binary bytes, given as base64;
// certificates under their plain names. Only the Memory directory can hold
// it (OpenLDAP has no objectGUID in its schema).
func TestObjectGUIDAnchor(t *testing.T) {
	guid := []byte{0x6b, 0x2f, 0x1a, 0x00, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0}
	der := []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	srv := startMemoryEntries(t, []ldaptest.Entry{
		{DN: "CN=Alice,OU=Staff," + suffix, Attributes: map[string][][]byte{
			"objectClass": {[]byte("user")}, "objectGUID": {guid}, "sAMAccountName": {[]byte("alice")},
			"userPrincipalName": {[]byte("alice@contoso.com")}, "userCertificate": {der}}},
		{DN: "CN=Broken,OU=Staff," + suffix, Attributes: map[string][][]byte{
			"objectClass": {[]byte("user")}, "objectGUID": {guid[:15]}, "sAMAccountName": {[]byte("broken")}}},
	}, false)
	cfg := srv.config()
	cfg.AnchorAttribute = "objectGUID"
	cfg.Filter = "(objectClass=user)"
	var got []mapping.SourceUser
	st, err := srv.open(t, cfg).Users(context.Background(), func(u mapping.SourceUser) error {
		got = append(got, u)
		return nil
	})
	if !errors.Is(err, ldapsrc.ErrIncompleteRead) || !strings.Contains(err.Error(), "CN=Broken") {
		t.Fatalf("Users: %v, want ErrIncompleteRead naming CN=Broken", err)
	}
	if st.Entries != 2 || st.SkippedNoAnchor != 1 || len(got) != 1 {
		t.Fatalf("Stats %+v, %d users passed; want 2 entries, 1 skipped", st, len(got))
	}
	u := got[0]
	if want := "ay8aAP8QIDBAUGBwgJCgsA=="; u.Anchor != want || u.Attributes["objectguid"] != want {
		t.Errorf("anchor %q, objectguid %q, want %q", u.Anchor, u.Attributes["objectguid"], want)
	}
	if u.Name() != "alice@contoso.com" || u.Attr("sAMAccountName") != "alice" {
		t.Errorf("identity attributes %v", u.Attributes)
	}
	if len(u.Values) != 1 || u.Values[0].Attribute != mapping.AttrUserCertificate || string(u.Values[0].Data) != string(der) {
		t.Errorf("values %s", describe(u.Values))
	}
}
