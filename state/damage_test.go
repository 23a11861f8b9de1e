package state

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// storeWith writes a state file holding n records and returns its path.
func storeWith(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for i := range n {
		recs = append(recs, Record{Anchor: fmt.Sprintf("anchor-%05d", i), Name: fmt.Sprintf("user%05d@example.test", i),
			Targets: map[string]TargetRecord{"graph.certificateUserIds": {CloudID: fmt.Sprintf("cloud-%05d", i), Values: []string{fmt.Sprintf("X509:<SKI>%040d", i)}}}})
	}
	if err := s.Update(recs, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// A damaged state file is refused, by writers and readers, with a message
// naming the file, the damage and the way back; it is never re-initialised
// (High 2 of the security review) and never mapped past its end (a panic
// or SIGBUS).
func TestDamagedStateRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		want   string
	}{
		{"empty", func(t *testing.T, path string) { truncate(t, path, 0) }, "it is empty (0 bytes)"},
		{"truncated", func(t *testing.T, path string) { truncate(t, path, 3*int64(os.Getpagesize())) }, "it was cut short"},
		{"torn first meta page, truncated", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(make([]byte, 64), 16); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()
			truncate(t, path, 3*int64(os.Getpagesize()))
		}, "it was cut short"},
		{"lost, its backup there", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "is missing but its backup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := storeWith(t, 2000)
			tc.damage(t, path)
			before, _ := os.ReadFile(path)
			for _, ro := range []bool{false, true} {
				s, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					_ = s.Close()
					t.Fatalf("Open(read-only %v) of a damaged file succeeded", ro)
				}
				if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) ||
					!strings.Contains(err.Error(), path+BackupSuffix) {
					t.Fatalf("Open(read-only %v): %v; want ErrDamaged naming %s, %q and the backup", ro, err, path, tc.want)
				}
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Fatal("Open changed the damaged file")
			}
			// The way back the message gives: the backup.
			if err := os.WriteFile(path, readBytes(t, path+BackupSuffix), 0o600); err != nil {
				t.Fatal(err)
			}
			s := openTest(t, path, Options{})
			if n, err := s.Count(); err != nil || n != 2000 {
				t.Fatalf("restored from the backup: %d records, %v; want 2000", n, err)
			}
		})
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// Backup copies the committed file whole: it opens, passes bbolt's check
// and holds what was committed; a later commit replaces it.
func TestBackupIsAWholeCopy(t *testing.T) {
	s, path := newStore(t)
	if err := s.Update([]Record{{Anchor: "a", Name: "a@example.test", Targets: map[string]TargetRecord{"t": {Values: []string{"v1"}}}}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(); err != nil {
		t.Fatal(err)
	}
	if err := s.Update([]Record{{Anchor: "b", Name: "b@example.test"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, path+BackupSuffix, Options{ReadOnly: true})
	if n, err := b.Count(); err != nil || n != 2 {
		t.Fatalf("backup holds %d records (%v), want 2", n, err)
	}
	if r, ok, err := b.Get("a"); err != nil || !ok || r.Targets["t"].Values[0] != "v1" {
		t.Fatalf("backup record a: %+v %v %v", r, ok, err)
	}
	if _, err := os.Stat(path + BackupSuffix + ".tmp"); err == nil {
		t.Fatal("the temporary copy was left behind")
	}
}

// A reader of a snapshot (a dry run) holds no lock on the state file:
// the agent's pass opens it for writing meanwhile, and the snapshot's
// copy goes away with it.
func TestSnapshotHoldsNoLock(t *testing.T) {
	path := storeWith(t, 10)
	snap, err := OpenSnapshot(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("a writer while a snapshot is open: %v", err)
	}
	if err := w.Update([]Record{{Anchor: "new"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := snap.Count(); err != nil || n != 10 {
		t.Fatalf("snapshot: %d records (%v), want the 10 of when it was taken", n, err)
	}
	copyPath := snap.Path()
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(copyPath); err == nil {
		t.Fatalf("snapshot copy %s left behind", copyPath)
	}
	if _, err := OpenSnapshot(filepath.Join(t.TempDir(), "none.db"), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("snapshot of a missing file: %v, want fs.ErrNotExist", err)
	}
}
