package state

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenCreatesPrivateDirAndFile(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "lib", "certsync", "state.db")
	s := openTest(t, path, Options{})
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	if runtime.GOOS == "windows" {
		return // Unix permission bits do not apply
	}
	for _, c := range []struct {
		path string
		want fs.FileMode
	}{
		{filepath.Join(root, "lib"), 0o700 | fs.ModeDir},
		{filepath.Join(root, "lib", "certsync"), 0o700 | fs.ModeDir},
		{path, 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.want)
		}
	}
}

func TestOpenEmptyPath(t *testing.T) {
	for _, ro := range []bool{false, true} {
		if _, err := Open("", Options{ReadOnly: ro}); err == nil {
			t.Errorf("Open(\"\", ReadOnly=%v) succeeded", ro)
		}
	}
}

func TestCloseTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
}

func TestReadOnlyMissingFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nowhere")
	path := filepath.Join(dir, "state.db")
	_, err := Open(path, Options{ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want one wrapping fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if _, statErr := os.Stat(dir); !errors.Is(statErr, fs.ErrNotExist) {
		t.Errorf("read-only Open created %s (stat: %v)", dir, statErr)
	}
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	w := openTest(t, path, Options{})
	if err := w.Update([]Record{{Anchor: "a", DN: "cn=a"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	before := readBytes(t, path)

	s := openTest(t, path, Options{ReadOnly: true})
	writes := []struct {
		name string
		do   func() error
	}{
		{"Update", func() error { return s.Update([]Record{{Anchor: "b"}}, nil) }},
		{"Update delete", func() error { return s.Update(nil, []string{"a"}) }},
		{"SetLastPass", func() error { return s.SetLastPass(PassSummary{Mode: "full"}) }},
		{"SetMeta", func() error { return s.SetMeta("k", 1) }},
	}
	for _, w := range writes {
		err := w.do()
		if err == nil {
			t.Errorf("%s on a read-only store succeeded", w.name)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name %s", w.name, err, path)
		}
	}
	if r, ok, err := s.Get("a"); err != nil || !ok || r.DN != "cn=a" {
		t.Errorf("Get(a) = %+v, %v, %v; want the record written before", r, ok, err)
	}
	if !bytes.Equal(readBytes(t, path), before) {
		t.Error("read-only store changed the file")
	}
}

// A file that was created (say by a previous version's install step) but
// never written reads as an empty store.
func TestReadOnlyOfUninitialisedDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, path, Options{ReadOnly: true})
	if n, err := s.Count(); err != nil || n != 0 {
		t.Errorf("Count = %d, %v; want 0, nil", n, err)
	}
	if _, ok, err := s.Get("a"); err != nil || ok {
		t.Errorf("Get = %v, %v; want false, nil", ok, err)
	}
	if _, ok, err := s.LastPass(); err != nil || ok {
		t.Errorf("LastPass = %v, %v; want false, nil", ok, err)
	}
	var v int
	if ok, err := s.Meta("k", &v); err != nil || ok {
		t.Errorf("Meta = %v, %v; want false, nil", ok, err)
	}
	if err := s.ForEach(func(Record) error { return errors.New("called") }); err != nil {
		t.Errorf("ForEach: %v", err)
	}
}

func TestOpenRefusesOtherFiles(t *testing.T) {
	random := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	cases := []struct {
		name    string
		content []byte
		want    string // in the error, besides the path
	}{
		{"text", []byte("hello, I am a config file\n"), "not a certsync state file"},
		{"zeros", make([]byte, 16<<10), "not a certsync state file"},
		{"random", random, "not a certsync state file"},
	}
	for _, c := range cases {
		for _, ro := range []bool{false, true} {
			t.Run(c.name+map[bool]string{false: "/write", true: "/read-only"}[ro], func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "state.db")
				if err := os.WriteFile(path, c.content, 0o600); err != nil {
					t.Fatal(err)
				}
				s, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					_ = s.Close()
					t.Fatal("Open succeeded")
				}
				if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("error %q: want the path and %q", err, c.want)
				}
				if errors.Is(err, ErrLocked) {
					t.Errorf("error %q claims the file is locked", err)
				}
				if !bytes.Equal(readBytes(t, path), c.content) {
					t.Error("Open changed the file")
				}
			})
		}
	}
}

func TestOpenReadOnlyEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("err = %v, want one naming %s as empty", err, path)
	}
	// A writer refuses it too: an empty state file is a lost one, never
	// a new one (damage_test.go).
	if _, err := Open(path, Options{}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("writer on an empty file: %v, want ErrDamaged", err)
	}
}

// makeBolt writes a bbolt file with the given buckets and keys.
func makeBolt(t *testing.T, path string, content map[string]map[string]string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for bucket, kv := range content {
			b, err := tx.CreateBucket([]byte(bucket))
			if err != nil {
				return err
			}
			for k, v := range kv {
				if err := b.Put([]byte(k), []byte(v)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenSchemaVersion(t *testing.T) {
	cases := []struct {
		name    string
		content map[string]map[string]string
		want    []string // all in the error; none means Open succeeds
	}{
		{"current", map[string]map[string]string{"schema": {"version": "2"}}, nil},
		{"version 1", map[string]map[string]string{"schema": {"version": "1"}}, nil},
		{"newer", map[string]map[string]string{"schema": {"version": "3"}, "users": {}}, []string{"version 3", "version 2"}},
		{"much newer", map[string]map[string]string{"schema": {"version": "17"}}, []string{"version 17", "version 2"}},
		{"garbled", map[string]map[string]string{"schema": {"version": "one"}}, []string{`"one"`}},
		{"zero", map[string]map[string]string{"schema": {"version": "0"}}, []string{`"0"`}},
		{"no version key", map[string]map[string]string{"schema": {}}, []string{"without a version"}},
		{"other program", map[string]map[string]string{"sessions": {"x": "y"}}, []string{"not a certsync state file", `"sessions"`}},
	}
	for _, c := range cases {
		for _, ro := range []bool{false, true} {
			t.Run(c.name+map[bool]string{false: "/write", true: "/read-only"}[ro], func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "state.db")
				makeBolt(t, path, c.content)
				s, err := Open(path, Options{ReadOnly: ro})
				if c.want == nil {
					if err != nil {
						t.Fatal(err)
					}
					defer s.Close()
					if n, err := s.Count(); err != nil || n != 0 {
						t.Errorf("Count = %d, %v", n, err)
					}
					return
				}
				if err == nil {
					_ = s.Close()
					t.Fatal("Open succeeded")
				}
				for _, w := range append(c.want, path) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
			})
		}
	}
}

func TestOpenNewerVersionLeavesFileAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	makeBolt(t, path, map[string]map[string]string{"schema": {"version": "3"}})
	before := readBytes(t, path)
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("Open succeeded")
	}
	if !bytes.Equal(readBytes(t, path), before) {
		t.Error("refused Open changed the file")
	}
}

// Opening a current file writes nothing (no needless fsync per pass).
func TestReopenWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, Options{})
	if err := s.Update([]Record{{Anchor: "a"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := readBytes(t, path)
	s2 := openTest(t, path, Options{})
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBytes(t, path), before) {
		t.Error("reopening changed the file")
	}
}

func TestOpenWhileLockedInProcess(t *testing.T) {
	cases := []struct {
		name       string
		first      Options
		second     Options
		wantLocked bool
		waited     string // in the message when locked
	}{
		{"writer then writer", Options{}, Options{Timeout: 150 * time.Millisecond}, true, "waited 150ms"},
		{"writer then writer, default timeout", Options{}, Options{}, true, "waited 1s"},
		{"writer then writer, try once", Options{}, Options{Timeout: -1}, true, "waited 0s"},
		{"writer then reader", Options{}, Options{ReadOnly: true, Timeout: 100 * time.Millisecond}, true, "waited 100ms"},
		{"reader then writer", Options{ReadOnly: true}, Options{Timeout: 100 * time.Millisecond}, true, "waited 100ms"},
		{"reader then reader", Options{ReadOnly: true}, Options{ReadOnly: true, Timeout: 100 * time.Millisecond}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			if c.first.ReadOnly {
				s := openTest(t, path, Options{})
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			openTest(t, path, c.first)
			s, err := openWithin(t, 30*time.Second, path, c.second)
			checkLockErr(t, err, c.wantLocked, path, c.waited)
			if !c.wantLocked && s == nil {
				t.Fatal("no store")
			}
		})
	}
}

func checkLockErr(t *testing.T, err error, wantLocked bool, want ...string) {
	t.Helper()
	if !wantLocked {
		if err != nil {
			t.Fatalf("err = %v, want none", err)
		}
		return
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want one wrapping ErrLocked", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestOpenWhileLockedByAnotherProcess(t *testing.T) {
	cases := []struct {
		holdMode   string
		second     Options
		wantLocked bool
	}{
		{"write", Options{Timeout: 200 * time.Millisecond}, true},
		{"write", Options{ReadOnly: true, Timeout: 200 * time.Millisecond}, true},
		{"read", Options{Timeout: 200 * time.Millisecond}, true},
		{"read", Options{ReadOnly: true, Timeout: 200 * time.Millisecond}, false},
		{"agent", Options{Timeout: 200 * time.Millisecond}, false}, // the agent lock is a separate file
	}
	for _, c := range cases {
		t.Run(c.holdMode+map[bool]string{false: "/then-write", true: "/then-read"}[c.second.ReadOnly], func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s := openTest(t, path, Options{})
			if err := s.Update([]Record{{Anchor: "a"}}, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			h := startHolder(t, path, c.holdMode)
			s2, err := openWithin(t, 30*time.Second, path, c.second)
			checkLockErr(t, err, c.wantLocked, path, "another certsync holds", "waited 200ms")
			if s2 != nil {
				if err := s2.Close(); err != nil {
					t.Fatal(err)
				}
			}
			h.release(t)
			// Once the other process is gone, the file is ours.
			s3, err := openWithin(t, 30*time.Second, path, c.second)
			if err != nil {
				t.Fatalf("after the holder exited: %v", err)
			}
			if _, ok, err := s3.Get("a"); err != nil || !ok {
				t.Errorf("Get(a) = %v, %v after the holder exited", ok, err)
			}
		})
	}
}

// A crashed agent (killed, no cleanup) never blocks the next one: the
// kernel drops its locks with the process.
func TestLockReleasedWhenHolderIsKilled(t *testing.T) {
	for _, mode := range []string{"write", "agent"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			h := startHolder(t, path, mode)
			if mode == "agent" {
				if _, err := LockAgent(path); !errors.Is(err, ErrLocked) {
					t.Fatalf("LockAgent while held: %v, want ErrLocked", err)
				}
			} else if _, err := openWithin(t, 30*time.Second, path, Options{Timeout: -1}); !errors.Is(err, ErrLocked) {
				t.Fatalf("Open while held: %v, want ErrLocked", err)
			}
			if err := h.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = h.cmd.Wait()
			if mode == "agent" {
				unlock, err := LockAgent(path)
				if err != nil {
					t.Fatalf("LockAgent after the holder was killed: %v", err)
				}
				if err := unlock(); err != nil {
					t.Fatal(err)
				}
				return
			}
			openTest(t, path, Options{Timeout: 5 * time.Second})
		})
	}
}
