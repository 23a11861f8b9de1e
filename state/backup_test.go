package state

import (
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// Backup copies the file when records changed since the last copy, or when
// the copy is gone, and only then: commits of meta, marks and chains
// alone leave the copy as it is.
func TestBackupOnlyAfterRecordsChanged(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	s, stored := filled(t, r, 10_000) // a commit of many goes in parts
	bak := s.Path() + BackupSuffix
	old := time.Unix(0, 0)
	// copied backs up and reports whether the copy was written anew: it
	// is dated 1970 before.
	copied := func() bool {
		t.Helper()
		if err := s.Backup(); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(bak)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(bak, old, old); err != nil {
			t.Fatal(err)
		}
		return !fi.ModTime().Equal(old)
	}
	if !copied() {
		t.Fatal("no copy was made when there was none")
	}
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		name   string
		change func() error
		copies bool
	}{
		{"a record put", func() error { return s.Update([]Record{{Anchor: "a", DN: "cn=a"}}, nil) }, true},
		{"nothing", func() error { return nil }, false},
		{"the last pass's summary", func() error { return s.SetLastPass(PassSummary{Started: now, Result: "ok"}) }, false},
		{"a watermark", func() error { return s.Commit(Commit{Meta: map[string]any{"wm": 7}}) }, false},
		{"a settled mark", func() error {
			return s.Commit(Commit{Settled: map[string]Settled{"a": {Inputs: sha256.Sum256([]byte("x"))}}})
		}, false},
		{"a chain", func() error {
			return s.PutChains(map[[sha256.Size]byte]Chain{sha256.Sum256([]byte("c")): {Expires: now.AddDate(1, 0, 0)}}, false, now)
		}, false},
		{"a record deleted", func() error { return s.Update(nil, []string{"a"}) }, true},
		{"the copy removed", func() error { return os.Remove(bak) }, true},
		{"a commit refused whole", func() error {
			if s.Update([]Record{{Anchor: "b"}, {Anchor: "~" + strings.Repeat("x", 40000)}}, nil) == nil {
				t.Fatal("the oversized anchor was written")
			}
			return nil
		}, false},
		{"a commit failing part way", func() error {
			var puts []Record
			for _, a := range randomAnchors(r, 3000) {
				puts = append(puts, Record{Anchor: a})
			}
			if s.Update(append(puts, Record{Anchor: "~" + strings.Repeat("x", 40000)}), nil) == nil {
				t.Fatal("the oversized anchor was written")
			}
			return nil
		}, true},
	}
	for _, st := range steps {
		if err := st.change(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := copied(); got != st.copies {
			t.Errorf("after %s: copied %v; want %v", st.name, got, st.copies)
		}
	}
	live, err := s.Count()
	if err != nil {
		t.Fatal(err)
	}
	b := openTest(t, bak, Options{ReadOnly: true})
	if n, err := b.Count(); err != nil || n != live || n <= len(stored) {
		t.Errorf("the last copy holds %d records, %v; want the live file's %d (more than %d)", n, err, live, len(stored))
	}
}
