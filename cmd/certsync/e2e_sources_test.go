package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certsync/certsync/agent/report"
)

// These tests run the binary with several directories (`sources:`)
// feeding one cloud: real slapd instances, the shared Samba DC, and the
// Graph emulator.

// namedDir is one entry of sources: a world's directory under a name.
type namedDir struct {
	name string
	w    *world
}

// readSources rewrites w's configuration to read the directories of dirs
// (w's own among them or not) instead of its single source, all feeding
// w's cloud: the other worlds' cloud users move into w's Graph emulator
// and their issuing CAs into w's policy bundle. The other worlds' own
// clouds are left unused.
func (w *world) readSources(dirs ...namedDir) {
	w.t.Helper()
	cfg := w.configText()
	var b strings.Builder
	b.WriteString("sources:\n")
	moved := map[*world]bool{w: true}
	for _, d := range dirs {
		b.WriteString(d.w.sourceEntry(d.name))
		if moved[d.w] {
			continue
		}
		moved[d.w] = true
		for _, u := range d.w.graph.Users() {
			w.graph.AddUser(u)
		}
		maps.Copy(w.cloudIDs, d.w.cloudIDs)
		mine, err := os.ReadFile(filepath.Join(w.dir, "issuing.pem"))
		if err != nil {
			w.t.Fatal(err)
		}
		theirs, err := os.ReadFile(filepath.Join(d.w.dir, "issuing.pem"))
		if err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(w.dir, "issuing.pem"), append(mine, theirs...), 0o600); err != nil {
			w.t.Fatal(err)
		}
	}
	w.setConfig(b.String() + cfg[strings.Index(cfg, "\ncloud:\n")+1:])
}

// sourceEntry is w's `source:` section as an entry of `sources:` named
// name, its password and CA files by absolute path.
func (w *world) sourceEntry(name string) string {
	w.t.Helper()
	cfg := w.configText()
	end := strings.Index(cfg, "\ncloud:\n")
	if !strings.HasPrefix(cfg, "source:\n") || end < 0 {
		w.t.Fatalf("%s: no source section followed by cloud:\n%s", w.cfg, cfg)
	}
	abs := strings.NewReplacer(
		"passwordFile: ldap-pw", fmt.Sprintf("passwordFile: %q", filepath.Join(w.dir, "ldap-pw")),
		"caFile: ldap-ca.pem", fmt.Sprintf("caFile: %q", filepath.Join(w.dir, "ldap-ca.pem")))
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n", name)
	for line := range strings.Lines(cfg[len("source:\n") : end+1]) {
		b.WriteString("  " + abs.Replace(line))
	}
	return b.String()
}

func (w *world) configText() string {
	w.t.Helper()
	cfg, err := os.ReadFile(w.cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return string(cfg)
}

func (w *world) setConfig(cfg string) {
	w.t.Helper()
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// replaceInConfig replaces the one occurrence of old in the configuration.
func (w *world) replaceInConfig(old, new string) {
	w.t.Helper()
	cfg := w.configText()
	if strings.Count(cfg, old) != 1 {
		w.t.Fatalf("%s holds %q %d times, want once", w.cfg, old, strings.Count(cfg, old))
	}
	w.setConfig(strings.Replace(cfg, old, new, 1))
}

// cloudSnapshot is every cloud user's certificateUserIds, by cloud ID.
func (w *world) cloudSnapshot() map[string][]string {
	out := map[string][]string{}
	for _, u := range w.graph.Users() {
		out[u.ID] = u.CertificateUserIDs
	}
	return out
}

// sameCloud fails unless the cloud holds exactly what want held, but for
// the users named in except.
func (w *world) sameCloud(when string, want map[string][]string, except ...string) {
	w.t.Helper()
	skip := map[string]bool{}
	for _, uid := range except {
		skip[w.cloudIDs[uid]] = true
	}
	for uid, id := range w.cloudIDs {
		if got := w.cloudValues(uid); !skip[id] && !slices.Equal(got, want[id]) {
			w.t.Errorf("%s: %s's cloud values changed: %v, were %v", when, uid, got, want[id])
		}
	}
}

// wantNoPatch fails when the emulator logged a PATCH to one of uids.
func (w *world) wantNoPatch(when string, uids ...string) {
	w.t.Helper()
	_, users := w.patches()
	for _, uid := range uids {
		if users["/v1.0/users/"+w.cloudIDs[uid]] {
			w.t.Errorf("%s: %s's cloud account was written", when, uid)
		}
	}
}

func (w *world) status() statusReport {
	w.t.Helper()
	code, out, errOut := w.run("status", "--output", "json")
	var st statusReport
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		w.t.Fatalf("certsync status: exit %d (%v)\n%s\n%s", code, err, out, errOut)
	}
	return st
}

func statusSources(st statusReport) map[string]statusSource {
	out := map[string]statusSource{}
	for _, s := range st.Sources {
		out[s.Name] = s
	}
	return out
}

func reportSources(r jsonReport) map[string]report.Source {
	out := map[string]report.Source{}
	for _, s := range r.Sources {
		out[s.Name] = s
	}
	return out
}

// wantUserSources fails unless r reports exactly the users of want (name
// → the source that read it), each from its source.
func wantUserSources(t *testing.T, r jsonReport, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, u := range r.Users {
		if prev, dup := got[u.Name]; dup {
			t.Errorf("%s reported twice (sources %s and %s)", u.Name, prev, u.Source)
		}
		got[u.Name] = u.Source
	}
	if !maps.Equal(got, want) {
		t.Errorf("users by source: got %v, want %v", got, want)
	}
}

// twoDirectories is a cloud fed by two slapd directories, east (whose
// world holds the cloud and the configuration) and west. The deletion
// limit is off, so that a wrong withdrawal shows as one rather than as a
// refused pass.
func twoDirectories(t *testing.T, eastPeople, westPeople []person) (east, west *world) {
	t.Helper()
	east, west = newWorld(t, eastPeople, "safety: {maxDeletes: unlimited, maxDeletePercent: unlimited}\n"), newWorld(t, westPeople, "")
	east.readSources(namedDir{"east", east}, namedDir{"west", west})
	return east, west
}

func TestSourcesFailedDirectoryLeavesOnlyItsUsers(t *testing.T) {
	w, west := twoDirectories(t,
		[]person{{uid: "alice", certs: 1, inCloud: true}, {uid: "bob", certs: 2, inCloud: true}},
		[]person{{uid: "carol", certs: 1, inCloud: true}, {uid: "dave", certs: 1, inCloud: true}})

	r := w.syncJSON(0)
	wantUserSources(t, r, map[string]string{"alice@example.test": "east", "bob@example.test": "east", "carol@example.test": "west", "dave@example.test": "west"})
	for uid, n := range map[string]int{"alice": 1, "bob": 2, "carol": 1, "dave": 1} {
		if got := w.cloudValues(uid); len(got) != n {
			t.Errorf("first pass: %s has %v in the cloud, want %d values", uid, got, n)
		}
	}
	published, writes := w.cloudSnapshot(), w.graph.Writes()

	w.graph.ResetRequests()
	w.syncJSON(0)
	if n, users := w.patches(); n != 0 || w.graph.Writes() != writes {
		t.Fatalf("second pass over unchanged directories: %d PATCH to %v (%d writes)", n, users, w.graph.Writes()-writes)
	}
	before := statusSources(w.status())

	// west goes away; meanwhile alice gets a new certificate in east.
	fresh := w.leaf("alice", time.Now().Add(-time.Minute), false)
	w.modify("alice", func(m *ldap.ModifyRequest) { m.Replace("userCertificate;binary", []string{string(fresh)}) })
	w.replaceInConfig(west.slapd.URL, "ldap://127.0.0.1:1")
	w.graph.ResetRequests()
	code, out, errOut := w.run("sync", "--output", "json")
	if err := json.Unmarshal([]byte(out), &r); code != 1 || err != nil {
		t.Fatalf("pass with west unreachable: exit %d (%v), want 1 with a report\n%s\n%s", code, err, out, errOut)
	}
	if !strings.Contains(errOut, "directory west") || strings.Contains(errOut, "directory east") {
		t.Errorf("stderr should name directory west, and only it: %q", errOut)
	}
	srcs := reportSources(r)
	if e := srcs["east"]; e.Error != "" || e.UsersRead != 2 {
		t.Errorf("report: east %+v, want read (2 users) without error", e)
	}
	if wst := srcs["west"]; !strings.Contains(wst.Error, "127.0.0.1:1") {
		t.Errorf("report: west %+v, want an error naming 127.0.0.1:1", wst)
	}
	if n, users := w.patches(); n != 1 || !users["/v1.0/users/"+w.cloudIDs["alice"]] {
		t.Errorf("pass with west unreachable: want one PATCH, to alice; got %d %v", n, users)
	}
	if got, want := w.cloudValues("alice"), skiValues(t, fresh); !slices.Equal(got, want) {
		t.Errorf("east's change was not applied: alice has %v, want %v", got, want)
	}
	// A renewal: one value out, one in; the guard does not count alice as
	// losing certificates.
	if r.Summary.ValuesRemoved != 1 || r.Summary.UsersRemoving != 0 {
		t.Errorf("only alice's old value may go, replaced: %+v", r.Summary)
	}
	w.sameCloud("pass with west unreachable", published, "alice")
	after := statusSources(w.status())
	if b, a := before["west"].Tracking, after["west"].Tracking; b == nil || a == nil || !a.LastFullRead.Equal(b.LastFullRead) ||
		a.Incremental != b.Incremental || !a.CertificateDue.Equal(b.CertificateDue) {
		t.Errorf("west's tracking moved on a failed read: before %+v, after %+v", b, a)
	}
	if b, a := before["east"].Tracking, after["east"].Tracking; b == nil || a == nil || !a.LastFullRead.After(b.LastFullRead) {
		t.Errorf("east's tracking did not move on its full read: before %+v, after %+v", b, a)
	}

	// west is back: nothing to do, nothing removed.
	published = w.cloudSnapshot()
	w.replaceInConfig("ldap://127.0.0.1:1", west.slapd.URL)
	w.graph.ResetRequests()
	r = w.syncJSON(0)
	if n, users := w.patches(); n != 0 || r.Summary.ValuesRemoved != 0 || r.Summary.UsersRemoving != 0 {
		t.Errorf("pass with west back: %d PATCH to %v, summary %+v; want nothing", n, users, r.Summary)
	}
	if wst := reportSources(r)["west"]; wst.Error != "" || wst.UsersRead != 2 {
		t.Errorf("report: west %+v, want read (2 users) without error", wst)
	}
	w.sameCloud("pass with west back", published)
}

func TestSourcesFullReadWithdrawsOnlyItsOwnUsers(t *testing.T) {
	cases := []struct {
		name  string
		leave func(east *world, uid string)
	}{
		{"entry deleted", func(east *world, uid string) {
			if err := east.slapd.Admin(east.t).Del(ldap.NewDelRequest("uid="+uid+","+east.slapd.PeopleDN, nil)); err != nil {
				east.t.Fatalf("delete %s: %v", uid, err)
			}
		}},
		{"mail taken away", func(east *world, uid string) {
			east.modify(uid, func(m *ldap.ModifyRequest) { m.Delete("mail", nil) })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := twoDirectories(t,
				[]person{{uid: "alice", certs: 1, inCloud: true}, {uid: "bob", certs: 1, inCloud: true}},
				[]person{{uid: "carol", certs: 1, inCloud: true}, {uid: "dave", certs: 2, inCloud: true}})
			w.syncJSON(0)
			if s := statusSources(w.status()); s["east"].Users != 2 || s["west"].Users != 2 {
				t.Fatalf("status after the first pass: %+v, want east and west with 2 users each", s)
			}
			published := w.cloudSnapshot()

			tc.leave(w, "bob")
			w.graph.ResetRequests()
			r := w.syncJSON(0)
			if n, users := w.patches(); n != 1 || !users["/v1.0/users/"+w.cloudIDs["bob"]] {
				t.Errorf("want one PATCH, to bob; got %d %v", n, users)
			}
			if r.Summary.UsersRemoving != 1 || r.Summary.ValuesRemoved != 1 {
				t.Errorf("want bob's one value withdrawn and nothing else: %+v", r.Summary)
			}
			if bob, _ := userByName(r, "bob@example.test"); !bob.Departed || bob.Source != "east" {
				t.Errorf("bob: %+v, want departed from east", bob)
			}
			if got := w.cloudValues("bob"); len(got) != 0 {
				t.Errorf("bob kept %v", got)
			}
			w.sameCloud("after bob left east", published, "bob")
			st := w.status()
			if s := statusSources(st); len(st.Sources) != 2 || s["east"].Users != 1 || s["west"].Users != 2 {
				t.Errorf("status: %+v, want east with 1 user and west with 2", st.Sources)
			}
		})
	}
}

func TestSourcesConflictWritesNothingToTheAccount(t *testing.T) {
	cases := []struct {
		name string
		// westUID is west's user; later: it takes zoe's mail only after a
		// first pass published east's zoe.
		westUID    string
		later      bool
		conflicted []string // sources whose zoe is reported in conflict
	}{
		{"both from the start", "zoe", false, []string{"east", "west"}},
		{"one arrives later", "zoey", true, []string{"west"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, west := twoDirectories(t,
				[]person{{uid: "alice", certs: 1, inCloud: true}, {uid: "zoe", certs: 1, inCloud: true}},
				[]person{{uid: "carol", certs: 1, inCloud: true}, {uid: tc.westUID, certs: 1}})
			var zoeWant []string
			if tc.later {
				w.syncJSON(0)
				zoeWant = skiValues(t, w.ldapCert["zoe"]...)
				west.modify(tc.westUID, func(m *ldap.ModifyRequest) { m.Replace("mail", []string{"zoe@example.test"}) })
			}
			if got := w.cloudValues("zoe"); !slices.Equal(got, zoeWant) {
				t.Fatalf("zoe before the conflicting pass: %v, want %v", got, zoeWant)
			}

			w.graph.ResetRequests()
			r := w.syncJSON(1)
			var conflicted []string
			for _, u := range r.Users {
				if u.Name != "zoe@example.test" {
					continue
				}
				if len(u.Targets) != 1 || !strings.HasPrefix(u.Targets[0].Problem, "conflict:") {
					t.Errorf("zoe of %s: targets %+v, want a conflict", u.Source, u.Targets)
					continue
				}
				if u.Targets[0].Status != statusSkipped || len(u.Targets[0].Add)+len(u.Targets[0].Remove) != 0 {
					t.Errorf("zoe of %s: target %+v, want skipped with nothing to add or remove", u.Source, u.Targets[0])
				}
				conflicted = append(conflicted, u.Source)
			}
			slices.Sort(conflicted)
			if !slices.Equal(conflicted, tc.conflicted) || r.Summary.UsersFailed != len(tc.conflicted) {
				t.Errorf("zoe in conflict in %v (%d users failed), want %v\n%+v", conflicted, r.Summary.UsersFailed, tc.conflicted, r.Users)
			}
			w.wantNoPatch("conflicting pass", "zoe")
			if got := w.cloudValues("zoe"); !slices.Equal(got, zoeWant) {
				t.Errorf("zoe's account after the conflicting pass: %v, want %v", got, zoeWant)
			}
			for _, uid := range []string{"alice", "carol"} {
				if len(w.cloudValues(uid)) != 1 {
					t.Errorf("%s was not published beside the conflict: %v", uid, w.cloudValues(uid))
				}
			}

			// west's user gives up zoe's mail: east's zoe alone gets it.
			west.modify(tc.westUID, func(m *ldap.ModifyRequest) { m.Delete("mail", nil) })
			w.syncJSON(0)
			if got, want := w.cloudValues("zoe"), skiValues(t, w.ldapCert["zoe"]...); !slices.Equal(got, want) {
				t.Errorf("zoe once the conflict is gone: %v, want east's %v", got, want)
			}
		})
	}
}

// The same directory read twice through overlapping sources: the second
// copy of each user decides nothing.
func TestSourcesOverlappingReadOfOneUser(t *testing.T) {
	w := newWorld(t, []person{{uid: "alice", certs: 1, inCloud: true}, {uid: "bob", certs: 2, inCloud: true}}, "")
	w.readSources(namedDir{"primary", w}, namedDir{"mirror", w})
	code, out, errOut := w.run("sync", "--output", "json")
	var r jsonReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 {
		t.Fatalf("overlapping sources: exit %d (%v), want a failed pass with a report\n%s\n%s", code, err, out, errOut)
	}
	copies := 0
	for _, u := range r.Users {
		switch {
		case u.Source == "mirror" && strings.Contains(u.Problem, "read from directory primary"):
			copies++
		case u.Source == "mirror" || u.Problem != "":
			t.Errorf("%s from %s: problem %q; only mirror's copies should have one, naming primary", u.Name, u.Source, u.Problem)
		}
	}
	if copies != 2 {
		t.Errorf("%d of mirror's 2 copies reported as read twice:\n%+v", copies, r.Users)
	}
	if len(w.cloudValues("alice")) != 1 || len(w.cloudValues("bob")) != 2 {
		t.Errorf("primary's users not published: alice %v, bob %v", w.cloudValues("alice"), w.cloudValues("bob"))
	}
	published := w.cloudSnapshot()
	w.graph.ResetRequests()
	if code, _, errOut := w.run("sync"); code != 1 || !strings.Contains(errOut, "users failed") {
		t.Errorf("second pass over overlapping sources: exit %d, stderr %q; want 1, the copies failing again", code, errOut)
	}
	if n, users := w.patches(); n != 0 {
		t.Errorf("second pass over overlapping sources wrote %d PATCH to %v", n, users)
	}
	w.sameCloud("second pass over overlapping sources", published)
}

func TestSourcesOpenLDAPAndActiveDirectory(t *testing.T) {
	dc := domainController(t)
	w := newWorld(t, []person{{uid: "alice", certs: 1, inCloud: true}, {uid: "bob", certs: 2, inCloud: true}}, "")
	ad := newADWorld(t, dc, []adPerson{{"kim", 1, 0}, {"lee", 1, 1}}, "", "")
	t.Cleanup(func() {
		for _, dn := range ad.dns {
			dc.DeleteUser(t, dn)
		}
	})
	ad.sourceKeys = []string{"anchorAttribute: objectGUID"}
	ad.writeConfig(dc.URL)
	w.readSources(namedDir{"openldap", w}, namedDir{"samba", ad.world})

	r := w.syncJSON(0)
	kim, lee := "kim@"+ad.dept+".test", "lee@"+ad.dept+".test"
	wantUserSources(t, r, map[string]string{"alice@example.test": "openldap", "bob@example.test": "openldap", kim: "samba", lee: "samba"})
	entryUUID := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for _, u := range r.Users {
		switch u.Source {
		case "openldap":
			if !entryUUID.MatchString(u.Anchor) || u.AnchorGUID != "" {
				t.Errorf("%s: anchor %q (GUID %q), want its entryUUID", u.Name, u.Anchor, u.AnchorGUID)
			}
		case "samba":
			name := strings.TrimSuffix(u.Name, "@"+ad.dept+".test")
			if u.Anchor != base64.StdEncoding.EncodeToString(ad.guids[name]) || u.AnchorGUID == "" {
				t.Errorf("%s: anchor %q (GUID %q), want the base64 of its objectGUID", u.Name, u.Anchor, u.AnchorGUID)
			}
		}
	}
	for uid, n := range map[string]int{"alice": 1, "bob": 2, "kim": 1, "lee": 2} {
		if got := w.cloudValues(uid); len(got) != n {
			t.Errorf("%s has %v in the cloud, want %d values", uid, got, n)
		}
	}

	writes := w.graph.Writes()
	w.graph.ResetRequests()
	r = w.syncJSON(0)
	if n, users := w.patches(); n != 0 || w.graph.Writes() != writes || r.Summary.UsersRead != 4 {
		t.Errorf("second pass: %d PATCH to %v (%d writes), %d users read; want 4 read and nothing written", n, users, w.graph.Writes()-writes, r.Summary.UsersRead)
	}

	code, _, out := w.doctor()
	if code != 0 {
		t.Fatalf("doctor with two directories: exit %d\n%s", code, out)
	}
	checks := map[string]string{} // "<source> <check>" → status
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[1] == "directory" {
			checks[f[2]+" "+f[3]] = f[0]
		}
	}
	for _, src := range []string{"openldap", "samba"} {
		for _, check := range []string{"tls", "bind", "filter"} {
			if got := checks[src+" "+check]; got != "OK" {
				t.Errorf("doctor: directory %s %s is %q, want OK\n%s", src, check, got, out)
			}
		}
	}
}
