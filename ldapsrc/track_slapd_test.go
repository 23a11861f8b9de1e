package ldapsrc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/ldapsrc/ldaptest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// oldStamp is the modifyTimestamp the seeded entries carry, so that only
// the test's own modifies are recent.
const oldStamp = "20200101000000Z"

// trackSlapd starts slapd with 25 staff and 2 contractors, all last
// modified long ago.
func trackSlapd(t *testing.T) (*ldaptest.Slapd, server) {
	t.Helper()
	d := newDataset(t)
	var seed []byte
	for _, p := range d.people {
		if p.Attributes == nil {
			p.Attributes = map[string][]string{}
		}
		p.Attributes["modifyTimestamp"] = []string{oldStamp}
		seed = append(seed, ldaptest.PersonLDIF(peopleDN, p)...)
	}
	s := ldaptest.StartSlapd(t, ldaptest.SlapdOptions{Suffix: suffix, SeedLDIF: seed})
	return s, server{name: "slapd", url: s.URL, roots: s.RootCAs, bindDN: s.AdminDN, password: s.AdminPassword}
}

// read runs one Read and collects its users by uid.
func read(t *testing.T, s *ldapsrc.Source, since []byte) (map[string]mapping.SourceUser, ldapsrc.ReadResult) {
	t.Helper()
	got := map[string]mapping.SourceUser{}
	res, err := s.Read(context.Background(), ldapsrc.ReadRequest{Since: since}, func(u mapping.SourceUser) error {
		got[u.Attr("uid")] = u
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got, res
}

func TestReadTimestamp(t *testing.T) {
	sl, srv := trackSlapd(t)
	src := srv.open(t, srv.config())

	users, full := read(t, src, nil)
	if !full.Full || !strings.Contains(full.Reason, "no watermark") || len(users) != staff || full.Next == nil {
		t.Fatalf("first read: full %v reason %q, %d users (want %d), next %q", full.Full, full.Reason, len(users), staff, full.Next)
	}
	// rootDSE, 3 pages of 10, and the check that modifyTimestamp is
	// visible at all.
	if full.Operations != 1+full.Pages+1 || full.Pages != 3 {
		t.Errorf("first read: %d operations, %d pages; want rootDSE + 3 pages + the modifyTimestamp check", full.Operations, full.Pages)
	}
	var wm map[string]any
	if err := json.Unmarshal(full.Next, &wm); err != nil || wm["mode"] != ldapsrc.TrackTimestamp {
		t.Errorf("watermark %s: %v, want mode %s", full.Next, err, ldapsrc.TrackTimestamp)
	}

	users, idle := read(t, src, full.Next)
	if idle.Full || len(users) != 0 || idle.Operations != 2 || idle.Next == nil {
		t.Fatalf("no-change read: full %v (%q), %d users, %d operations (want 0 users, 2 operations), next %q",
			idle.Full, idle.Reason, len(users), idle.Operations, idle.Next)
	}

	ca, err := pkitest.NewRootCA("rotation CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.Issue(pkitest.LeafOptions{CommonName: "p03 new", Email: "p03@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	admin := sl.Admin(t)
	for uid, attr := range map[string]string{"p03": "userCertificate;binary", "c1": "userCertificate;binary"} {
		m := ldap.NewModifyRequest(ldaptest.PersonDN(peopleDN, ldaptest.Person{UID: uid}), nil)
		m.Replace(attr, []string{string(cert.Raw)})
		if err := admin.Modify(m); err != nil {
			t.Fatalf("modify %s: %v", uid, err)
		}
	}
	users, inc := read(t, src, idle.Next)
	if inc.Full || len(users) != 1 {
		t.Fatalf("after a modify: full %v (%q), users %v; want only p03 (c1 is out of the filter)", inc.Full, inc.Reason, keys(users))
	}
	var certs []mapping.RawValue
	for _, v := range users["p03"].Values {
		if v.Attribute == mapping.AttrUserCertificate {
			certs = append(certs, v)
		}
	}
	if !equalValues(certs, []mapping.RawValue{{Attribute: mapping.AttrUserCertificate, Data: cert.Raw}}) {
		t.Errorf("p03 has %d userCertificate values after the modify, want only the new certificate", len(certs))
	}
}

func keys(m map[string]mapping.SourceUser) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestReadWatermarks: every watermark that does not fit the server and
// configuration leads to a full read saying why; full mode never returns
// a watermark.
func TestReadWatermarks(t *testing.T) {
	_, srv := trackSlapd(t)
	src := srv.open(t, srv.config())
	_, first := read(t, src, nil)

	otherFilter := srv.config()
	otherFilter.Filter = "(|" + staffFilter + "(employeeType=contractor))"
	fullMode := srv.config()
	fullMode.ChangeTracking = ldapsrc.TrackFull

	tests := []struct {
		name       string
		cfg        ldapsrc.Config
		since      []byte
		wantFull   bool
		wantReason string
		wantNext   bool
	}{
		{name: "own watermark", cfg: srv.config(), since: first.Next, wantNext: true},
		{name: "garbled", cfg: srv.config(), since: []byte("\x00garbage"), wantFull: true, wantReason: "watermark unusable: not a certsync watermark", wantNext: true},
		{name: "future version", cfg: srv.config(), since: []byte(`{"v":99,"mode":"modifyTimestamp","since":"2026-01-01T00:00:00Z"}`),
			wantFull: true, wantReason: "watermark version 99", wantNext: true},
		{name: "usn watermark", cfg: srv.config(), since: []byte(`{"v":1,"mode":"usn","dnsHostName":"dc1","invocationId":"x","highestCommittedUSN":5}`),
			wantFull: true, wantReason: "change tracking changed from usn to modifyTimestamp", wantNext: true},
		{name: "filter changed", cfg: otherFilter, since: first.Next, wantFull: true, wantReason: "filter or attributes changed", wantNext: true},
		{name: "full mode, no watermark", cfg: fullMode, wantFull: true, wantReason: "change tracking is off"},
		{name: "full mode with watermark", cfg: fullMode, since: first.Next, wantFull: true, wantReason: "change tracking is off"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			users, res := read(t, srv.open(t, tc.cfg), tc.since)
			if res.Full != tc.wantFull || !strings.Contains(res.Reason, tc.wantReason) || (res.Next != nil) != tc.wantNext {
				t.Fatalf("full %v reason %q next %q; want full %v reason containing %q, next %v",
					res.Full, res.Reason, res.Next, tc.wantFull, tc.wantReason, tc.wantNext)
			}
			if tc.wantFull && len(users) < staff {
				t.Errorf("full read returned %d users, want at least %d", len(users), staff)
			}
			if !tc.wantFull && len(users) != 0 {
				t.Errorf("incremental read returned %d users, want 0", len(users))
			}
		})
	}
}

// TestReadFailures: a read that fails returns no watermark, and modes the
// server cannot honour fail with the reason.
func TestReadFailures(t *testing.T) {
	_, srv := trackSlapd(t)
	stop := errors.New("stop here")
	usn, dirsync, guid := srv.config(), srv.config(), srv.config()
	usn.ChangeTracking = ldapsrc.TrackUSN
	dirsync.ChangeTracking, dirsync.AnchorAttribute = ldapsrc.TrackDirSync, "objectGUID"
	guid.ChangeTracking = "DirSync" // anchor entryUUID
	tests := []struct {
		name    string
		cfg     ldapsrc.Config
		fn      func(mapping.SourceUser) error
		wantErr string
	}{
		{name: "fn fails", cfg: srv.config(), fn: func(u mapping.SourceUser) error {
			if u.Attr("uid") == "p12" {
				return stop
			}
			return nil
		}, wantErr: "stop here"},
		{name: "usn on OpenLDAP", cfg: usn, wantErr: "offers no highestCommittedUSN"},
		{name: "dirsync on OpenLDAP", cfg: dirsync, wantErr: "does not offer the DirSync control"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fn := tc.fn
			if fn == nil {
				fn = func(mapping.SourceUser) error { return nil }
			}
			res, err := srv.open(t, tc.cfg).Read(context.Background(), ldapsrc.ReadRequest{}, fn)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Read error %v, want one containing %q", err, tc.wantErr)
			}
			if res.Next != nil {
				t.Errorf("a failed read returned watermark %q", res.Next)
			}
		})
	}
	for _, tc := range []struct{ mode, wantErr string }{
		{"dirSync", "needs anchorAttribute objectGUID"},
		{"often", `changeTracking "often"`},
	} {
		t.Run("config "+tc.mode, func(t *testing.T) {
			cfg := guid
			cfg.ChangeTracking = tc.mode
			_, err := ldapsrc.Open(context.Background(), cfg, zaptest.NewLogger(t))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Open with changeTracking %q: %v, want an error containing %q", tc.mode, err, tc.wantErr)
			}
		})
	}
}

func TestGUIDString(t *testing.T) {
	tests := []struct {
		anchor string
		want   string
		ok     bool
	}{
		// bytes 33 22 11 00 55 44 77 66 88 99 aa bb cc dd ee ff
		{anchor: "MyIRAFVEd2aImaq7zN3u/w==", want: "00112233-4455-6677-8899-aabbccddeeff", ok: true},
		{anchor: "AAAAAAAAAAAAAAAAAAAAAA==", want: "00000000-0000-0000-0000-000000000000", ok: true},
		{anchor: "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}, // an entryUUID anchor
		{anchor: "MyIRAFVEd2aImaq7zN3u"},                 // 15 bytes
		{anchor: ""},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.anchor), func(t *testing.T) {
			got, ok := ldapsrc.GUIDString(tc.anchor)
			if got != tc.want || ok != tc.ok {
				t.Errorf("GUIDString(%q) = %q, %v; want %q, %v", tc.anchor, got, ok, tc.want, tc.ok)
			}
		})
	}
}
