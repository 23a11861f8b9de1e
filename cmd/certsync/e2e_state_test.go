package main

import (
	"os"
	"path/filepath"
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
