package ldapsrc_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// samba is the package's one Active Directory DC, provisioned on first use
// (several seconds) and stopped by TestMain. Tests keep apart by giving
// their users a department of their own and filtering on it.
var samba struct {
	once sync.Once
	dc   *ldaptest.Samba
	dir  string
	err  error
}

// sharedSamba returns the shared DC, starting it if needed. A DC that does
// not come up fails the test: never a skip.
func sharedSamba(t testing.TB) *ldaptest.Samba {
	t.Helper()
	samba.once.Do(func() {
		samba.dir, samba.err = os.MkdirTemp("", "certsync-samba-")
		if samba.err == nil {
			samba.dc, samba.err = ldaptest.LaunchSamba(samba.dir, ldaptest.SambaOptions{})
		}
	})
	if samba.err != nil {
		t.Fatalf("samba DC: %v", samba.err)
	}
	return samba.dc
}

func TestMain(m *testing.M) {
	code := m.Run()
	if samba.dc != nil {
		if err := samba.dc.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop samba DC:", err)
			code = max(code, 1)
		}
	}
	if samba.dir != "" {
		_ = os.RemoveAll(samba.dir)
	}
	os.Exit(code)
}

// adConfig reads the users of department dept from the domain root, where
// a DC without the domain-scope control would add referrals.
func adConfig(dc *ldaptest.Samba, dept, mode string) ldapsrc.Config {
	return ldapsrc.Config{
		URL:             dc.URL,
		BaseDN:          dc.BaseDN,
		Filter:          fmt.Sprintf("(&(objectClass=user)(department=%s))", dept),
		AnchorAttribute: "objectGUID",
		PageSize:        50,
		ChangeTracking:  mode,
		Bind:            ldapsrc.Bind{Username: dc.AdminUser, Password: dc.AdminPassword},
		TLS:             ldapsrc.TLS{RootCAs: dc.RootCAs, ServerName: dc.ServerName},
		DialTimeout:     10 * time.Second,
		OpTimeout:       time.Minute,
	}
}

func openAD(t testing.TB, cfg ldapsrc.Config, log *zap.Logger) *ldapsrc.Source {
	t.Helper()
	s, err := ldapsrc.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("Open %s: %v", cfg.URL, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// adUsers adds n users of department dept, each with one certificate, and
// returns them with their anchors.
func adUsers(t testing.TB, dc *ldaptest.Samba, dept string, n int) ([]ldaptest.SambaAdded, []string) {
	t.Helper()
	cert := newCert(t, dept)
	users := make([]ldaptest.SambaUser, n)
	for i := range users {
		name := fmt.Sprintf("%s-%04d", dept, i)
		users[i] = ldaptest.SambaUser{Name: name, Mail: name + "@samba.test", UserCertificates: [][]byte{cert},
			Attributes: map[string][]string{"department": {dept}}}
	}
	added := dc.AddUsers(t, users)
	anchors := make([]string, n)
	for i, a := range added {
		anchors[i] = base64.StdEncoding.EncodeToString(a.GUID)
	}
	return added, anchors
}

// readAD runs one Read and returns the users by anchor.
func readAD(t testing.TB, s *ldapsrc.Source, since []byte) (map[string]mapping.SourceUser, ldapsrc.ReadResult) {
	t.Helper()
	got := map[string]mapping.SourceUser{}
	res, err := s.Read(context.Background(), ldapsrc.ReadRequest{Since: since}, func(u mapping.SourceUser) error {
		got[u.Anchor] = u
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got, res
}

func newCert(t testing.TB, cn string) []byte {
	t.Helper()
	ca, err := pkitest.NewRootCA(cn + " CA")
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := ca.Issue(pkitest.LeafOptions{CommonName: cn, Email: cn + "@samba.test"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Raw
}

// hasCert tells whether u holds exactly the userCertificate values want.
func hasCert(u mapping.SourceUser, want ...[]byte) bool {
	var got [][]byte
	for _, v := range u.Values {
		if v.Attribute == mapping.AttrUserCertificate {
			got = append(got, v.Data)
		}
	}
	return slices.EqualFunc(got, want, bytes.Equal)
}

func TestSambaUSN(t *testing.T) {
	dc := sharedSamba(t)
	added, anchors := adUsers(t, dc, "track-usn", 3)
	src := openAD(t, adConfig(dc, "track-usn", ""), zaptest.NewLogger(t))

	users, full := readAD(t, src, nil)
	if !full.Full || len(users) != 3 || full.Next == nil {
		t.Fatalf("first read: full %v (%q), %d users, next %q; want a full read of 3 users and a watermark", full.Full, full.Reason, len(users), full.Next)
	}
	var wm struct {
		Mode, DNSHostName, InvocationID string
		USN                             int64 `json:"highestCommittedUSN"`
	}
	if err := json.Unmarshal(full.Next, &wm); err != nil || wm.Mode != ldapsrc.TrackUSN ||
		!strings.EqualFold(wm.DNSHostName, dc.ServerName) || len(wm.InvocationID) != 36 || wm.USN <= 0 {
		t.Fatalf("watermark %s (%v): want mode usn, DC %s, an invocationId and a USN", full.Next, err, dc.ServerName)
	}

	users, idle := readAD(t, src, full.Next)
	if idle.Full || len(users) != 0 || idle.Operations > 4 {
		t.Fatalf("no-change read: full %v (%q), %d users, %d operations; want 0 users in at most 4 operations", idle.Full, idle.Reason, len(users), idle.Operations)
	}
	t.Logf("no-change incremental read: %d LDAP operations", idle.Operations)

	// A change outside the filter moves the DC's USN: the read then
	// searches, and still finds nothing.
	outside, _ := adUsers(t, dc, "track-usn-outside", 1)
	dc.SetCertificates(t, outside[0].DN, "userCertificate", [][]byte{newCert(t, "outside")})
	users, moved := readAD(t, src, idle.Next)
	if moved.Full || len(users) != 0 || moved.Operations != 3 || bytes.Equal(moved.Next, idle.Next) {
		t.Fatalf("read after a change out of scope: full %v (%q), %d users, %d operations; want 0 users in 3 operations (rootDSE, invocationId, one search) and a new watermark",
			moved.Full, moved.Reason, len(users), moved.Operations)
	}
	idle = moved

	cert := newCert(t, "usn rotation")
	dc.SetCertificates(t, added[1].DN, "userCertificate", [][]byte{cert})
	users, inc := readAD(t, src, idle.Next)
	if inc.Full || len(users) != 1 || !hasCert(users[anchors[1]], cert) {
		t.Fatalf("after one certificate change: full %v (%q), %d users; want exactly %s with the new certificate", inc.Full, inc.Reason, len(users), added[1].DN)
	}
	if u := users[anchors[1]]; u.Attr("mail") == "" || u.Attr("userprincipalname") == "" {
		t.Errorf("changed user read without its identity attributes: %v", u.Attributes)
	}

	t.Run("another DC", func(t *testing.T) {
		var m map[string]any
		if err := json.Unmarshal(inc.Next, &m); err != nil {
			t.Fatal(err)
		}
		m["dnsHostName"] = "dc9.samba.test"
		other, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		users, res := readAD(t, src, other)
		if !res.Full || len(users) != 3 || !strings.Contains(res.Reason, "another DC") || !strings.Contains(res.Reason, "dc9.samba.test") {
			t.Fatalf("watermark of another DC: full %v, reason %q, %d users; want a full read naming dc9", res.Full, res.Reason, len(users))
		}
	})

	t.Run("restored DC", func(t *testing.T) {
		// A DC provisioned anew under the same name answers with the same
		// dnsHostName and a new invocationId: what a restore looks like.
		dc2 := ldaptest.StartSamba(t, ldaptest.SambaOptions{})
		adUsers(t, dc2, "track-usn", 2)
		src2 := openAD(t, adConfig(dc2, "track-usn", ""), zaptest.NewLogger(t))
		users, res := readAD(t, src2, inc.Next)
		if !res.Full || len(users) != 2 || !strings.Contains(res.Reason, "DC restored (invocationId changed)") ||
			!strings.Contains(res.Reason, wm.InvocationID) {
			t.Fatalf("watermark of the DC before its restore: full %v, reason %q, %d users; want a full read naming the old invocationId %s",
				res.Full, res.Reason, len(users), wm.InvocationID)
		}
	})
}

func TestSambaDirSync(t *testing.T) {
	dc := sharedSamba(t)
	added, anchors := adUsers(t, dc, "track-dirsync", 3)
	smime := newCert(t, "dirsync smime")
	dc.SetCertificates(t, added[0].DN, "userSMIMECertificate", [][]byte{smime})
	src := openAD(t, adConfig(dc, "track-dirsync", ldapsrc.TrackDirSync), zaptest.NewLogger(t))

	users, full := readAD(t, src, nil)
	if !full.Full || len(users) != 3 || full.Next == nil {
		t.Fatalf("first read: full %v (%q), %d users, next %q", full.Full, full.Reason, len(users), full.Next)
	}
	users, idle := readAD(t, src, full.Next)
	if idle.Full || len(users) != 0 || len(idle.Deleted) != 0 {
		t.Fatalf("no-change read: full %v (%q), %d users, deleted %v", idle.Full, idle.Reason, len(users), idle.Deleted)
	}
	t.Logf("no-change DirSync read: %d LDAP operations", idle.Operations)

	// Only userCertificate changes; DirSync alone would return just that
	// attribute, so the user must come back whole.
	cert := newCert(t, "dirsync rotation")
	dc.SetCertificates(t, added[0].DN, "userCertificate", [][]byte{cert})
	users, inc := readAD(t, src, idle.Next)
	u := users[anchors[0]]
	if inc.Full || len(users) != 1 || !hasCert(u, cert) {
		t.Fatalf("after one certificate change: full %v (%q), %d users; want exactly %s with the new certificate", inc.Full, inc.Reason, len(users), added[0].DN)
	}
	if u.Attr("mail") == "" || !slices.ContainsFunc(u.Values, func(v mapping.RawValue) bool { return bytes.Equal(v.Data, smime) }) {
		t.Errorf("changed user not read whole: attributes %v, %d values (want mail and the unchanged S/MIME value)", u.Attributes, len(u.Values))
	}

	// A user entering the filter through an attribute certsync does not
	// read is still a change DirSync must report.
	later, laterAnchors := adUsers(t, dc, "track-dirsync-later", 1)
	users, _ = readAD(t, src, inc.Next)
	if len(users) != 0 {
		t.Fatalf("a user out of the filter was read: %v", users)
	}
	mod := ldap.NewModifyRequest(later[0].DN, nil)
	mod.Replace("department", []string{"track-dirsync"})
	if err := dc.Admin(t).Modify(mod); err != nil {
		t.Fatal(err)
	}
	users, entered := readAD(t, src, inc.Next)
	if _, ok := users[laterAnchors[0]]; entered.Full || len(users) != 1 || !ok {
		t.Fatalf("after a user entered the filter: full %v, %d users; want exactly %s", entered.Full, len(users), later[0].DN)
	}

	dc.DeleteUser(t, added[2].DN)
	users, del := readAD(t, src, entered.Next)
	if del.Full || len(users) != 0 || !slices.Equal(del.Deleted, []string{anchors[2]}) {
		t.Fatalf("after a delete: full %v (%q), %d users, deleted %v; want only %s deleted", del.Full, del.Reason, len(users), del.Deleted, anchors[2])
	}

	t.Run("right missing", func(t *testing.T) {
		const pw = "Reader-Passw0rd!x"
		reader := ldaptest.SambaUser{Name: "dirsync-reader", Password: pw}
		dc.AddUser(t, reader)
		cfg := adConfig(dc, "track-dirsync", ldapsrc.TrackDirSync)
		cfg.Bind = ldapsrc.Bind{Username: "dirsync-reader@" + strings.ToLower(dc.Realm), Password: pw}
		res, err := openAD(t, cfg, zaptest.NewLogger(t)).Read(context.Background(), ldapsrc.ReadRequest{},
			func(mapping.SourceUser) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "Replicating Directory Changes") || res.Next != nil {
			t.Fatalf("DirSync without the right: %v, next %q; want an error naming the right and no watermark", err, res.Next)
		}
		// auto never picks DirSync: the same account tracks by USN.
		cfg.ChangeTracking = ldapsrc.TrackAuto
		if _, res := readAD(t, openAD(t, cfg, zaptest.NewLogger(t)), nil); res.Next == nil {
			t.Errorf("auto mode for an account without the right: no watermark")
		}
	})
}

// TestSambaDomainScope: a subtree search at the domain root draws
// referrals to the other partitions unless the domain-scope control is
// sent; Read sends it, and clamps pages to AD's 1000.
func TestSambaDomainScope(t *testing.T) {
	dc := sharedSamba(t)
	adUsers(t, dc, "track-scope", 2)

	referrals := func(controls []ldap.Control) int {
		conn := dc.Admin(t)
		req := ldap.NewSearchRequest(dc.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			"(department=track-scope)", []string{"1.1"}, controls)
		resp := conn.SearchAsync(context.Background(), req, 16)
		n := 0
		for resp.Next() {
			if resp.Referral() != "" {
				n++
			}
		}
		if err := resp.Err(); err != nil {
			t.Fatalf("search %s: %v", dc.BaseDN, err)
		}
		return n
	}
	without := referrals(nil)
	with := referrals([]ldap.Control{ldap.NewControlString(ldap.ControlTypeMicrosoftDomainScope, false, "")})
	if without == 0 || with != 0 {
		t.Fatalf("referrals from the domain root: %d without the domain-scope control, %d with; want some, then none", without, with)
	}

	core, logs := observer.New(zapcore.DebugLevel)
	cfg := adConfig(dc, "track-scope", ldapsrc.TrackFull)
	cfg.PageSize = 5000
	users, res := readAD(t, openAD(t, cfg, zap.New(core)), nil)
	if len(users) != 2 || res.Next != nil {
		t.Fatalf("full read at the domain root: %d users, next %q; want 2 and no watermark", len(users), res.Next)
	}
	if n := logs.FilterMessage("ldapsrc: referral not followed").Len(); n != 0 {
		t.Errorf("Read received %d referrals: domain-scope control not sent", n)
	}
	if logs.FilterMessage("ldapsrc: page size clamped to Active Directory's maximum").Len() != 1 {
		t.Errorf("page size 5000 not clamped to 1000")
	}
}
