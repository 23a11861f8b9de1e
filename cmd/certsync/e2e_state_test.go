package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// A lost or emptied state file is refused with the way back (High 2 of
// the security review), and the backup each pass leaves restores
// ownership: a certificate leaving the directory afterwards still takes
// its binding with it.
func TestDamagedStateRefusedAndRestored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string) error
		want   string
	}{
		{"emptied", func(path string) error { return os.Truncate(path, 0) }, "is damaged: it is empty (0 bytes)"},
		{"lost", os.Remove, "is missing but its backup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, basicPeople(), "")
			w.syncJSON(0)
			path := filepath.Join(w.dir, "state", "state.db")
			if _, err := os.Stat(path + ".bak"); err != nil {
				t.Fatalf("no backup after a pass: %v", err)
			}
			if err := tc.damage(path); err != nil {
				t.Fatal(err)
			}
			w.graph.ResetRequests()
			for _, args := range [][]string{{"sync"}, {"sync", "--dry-run"}, {"status"}} {
				code, out, errOut := w.run(args...)
				if code != 1 || !strings.Contains(errOut, path) || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, path+".bak") {
					t.Fatalf("%v over a damaged state file: exit %d, want 1 naming %s, %q and the backup\n%s\n%s", args, code, path, tc.want, out, errOut)
				}
			}
			if n := len(w.graph.Requests()); n != 0 {
				t.Fatalf("%d cloud requests with a damaged state file", n)
			}
			bak, err := os.ReadFile(path + ".bak")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, bak, 0o600); err != nil {
				t.Fatal(err)
			}
			w.modify("alice", func(m *ldap.ModifyRequest) { m.Delete("userCertificate;binary", nil) })
			r := w.syncJSON(0)
			if r.Summary.ValuesRemoved != 1 || len(w.cloudValues("alice")) != 0 {
				t.Fatalf("after restoring the backup: %+v, alice %v; want her binding withdrawn", r.Summary, w.cloudValues("alice"))
			}
		})
	}
}

// When no backup survives, `sync --reclaim` takes back what certsync can
// prove is its own: the values it derives from certificates on each
// user's entry. A certificate leaving the directory afterwards takes its
// binding with it; without --reclaim the binding would stay for good (a
// lost smart card signing in). A hand-added value stays unowned.
func TestReclaimAfterLostState(t *testing.T) {
	for _, reclaim := range []bool{true, false} {
		t.Run(map[bool]string{true: "reclaim", false: "without reclaim"}[reclaim], func(t *testing.T) {
			w := newWorld(t, basicPeople(), "")
			w.syncJSON(0)
			aliceBinding := w.cloudValues("alice")
			path := filepath.Join(w.dir, "state", "state.db")
			for _, p := range []string{path, path + ".bak"} {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			w.graph.ResetRequests()
			if reclaim {
				r := w.syncJSON(0, "--reclaim")
				adopted := 0
				for _, u := range r.Users {
					for _, tg := range u.Targets {
						adopted += len(tg.Adopted)
						if slices.Contains(tg.Adopted, "X509:<PN>carol@example.test") {
							t.Errorf("the hand-added value was reclaimed")
						}
					}
				}
				if adopted != 4 { // alice 1, bob 2, carol 1
					t.Fatalf("reclaimed %d values, want 4: %+v", adopted, r.Users)
				}
			} else {
				w.syncJSON(0)
			}
			if n, _ := w.patches(); n != 0 {
				t.Fatalf("%d PATCH while taking values back", n)
			}
			w.modify("alice", func(m *ldap.ModifyRequest) { m.Delete("userCertificate;binary", nil) })
			w.syncJSON(0)
			got := w.cloudValues("alice")
			switch {
			case reclaim && len(got) != 0:
				t.Fatalf("alice's card left the directory, her binding stayed: %v", got)
			case !reclaim && !slices.Equal(got, aliceBinding):
				t.Fatalf("without --reclaim certsync cannot know the binding was its own, so it must leave it: %v", got)
			}
			if carol := w.cloudValues("carol"); !slices.Contains(carol, "X509:<PN>carol@example.test") {
				t.Fatalf("carol's hand-added value is gone: %v", carol)
			}
		})
	}
}
