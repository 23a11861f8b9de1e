package state

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Environment of the helper process that holds a lock for a parent test:
// a real second process, as two certsync agents would be.
const (
	envHoldPath = "CERTSYNC_STATE_TEST_HOLD"
	envHoldMode = "CERTSYNC_STATE_TEST_HOLD_MODE" // "write", "read" or "agent"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(envHoldPath); path != "" {
		os.Exit(holdForParent(path, os.Getenv(envHoldMode)))
	}
	os.Exit(m.Run())
}

// holdForParent takes the lock, says "ready" on stdout and keeps it until
// stdin closes (or the process is killed).
func holdForParent(path, mode string) int {
	var release func() error
	switch mode {
	case "write", "read":
		s, err := Open(path, Options{ReadOnly: mode == "read"})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		release = s.Close
	case "agent":
		unlock, err := LockAgent(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		release = unlock
	default:
		fmt.Fprintf(os.Stderr, "unknown hold mode %q\n", mode)
		return 2
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := release(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// holder is a child process holding a lock on a state file.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startHolder runs this test binary as a helper process holding mode's lock
// on path, and returns once the lock is held.
func startHolder(t *testing.T, path, mode string) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envHoldPath+"="+path, envHoldMode+"="+mode)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start lock holder: %v", err)
	}
	h := &holder{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { _ = h.cmd.Process.Kill(); _ = h.cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("holder said %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("lock holder (%s on %s) did not get ready: %v", mode, path, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("lock holder (%s on %s) not ready after 30s", mode, path)
	}
	return h
}

// release lets the holder unlock and exit cleanly.
func (h *holder) release(t *testing.T) {
	t.Helper()
	_ = h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("lock holder exited with %v", err)
	}
}

// openTest opens a store and, on cleanup, closes it and runs bbolt's
// consistency check over the file (as bbolt's own btesting does).
func openTest(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s, %+v): %v", path, opts, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		checkFile(t, path)
	})
	return s
}

// newStore is a fresh writable store in a directory Open has to create.
func newStore(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "var", "state.db")
	return openTest(t, path, Options{}), path
}

func checkFile(t testing.TB, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Errorf("reopen %s for check: %v", path, err)
		return
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check of %s: %v", path, err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("check %s: %v", path, err)
	}
}

// normalize gives a Record the form it has after a round trip through the
// file: nil for empty slices and maps, times without Location or monotonic
// reading.
func normalize(r Record) Record {
	r.ProblemAt = normTime(r.ProblemAt)
	r.UpdatedAt = normTime(r.UpdatedAt)
	if len(r.Targets) == 0 {
		r.Targets = nil
		return r
	}
	ts := make(map[string]TargetRecord, len(r.Targets))
	for name, tr := range r.Targets {
		if len(tr.Values) == 0 {
			tr.Values = nil
		}
		if len(tr.Pending) == 0 {
			tr.Pending = nil
		}
		ts[name] = tr
	}
	r.Targets = ts
	return r
}

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func assertRecord(t *testing.T, got, want Record) {
	t.Helper()
	if g, w := normalize(got), normalize(want); !reflect.DeepEqual(g, w) {
		t.Errorf("record %q:\n got %+v\nwant %+v", want.Anchor, g, w)
	}
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openWithin runs Open and fails the test if it has not returned after
// limit: Open must never wait forever for a lock.
func openWithin(t *testing.T, limit time.Duration, path string, opts Options) (*Store, error) {
	t.Helper()
	type res struct {
		s   *Store
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := Open(path, opts)
		ch <- res{s, err}
	}()
	select {
	case r := <-ch:
		if r.s != nil {
			t.Cleanup(func() { _ = r.s.Close() })
		}
		return r.s, r.err
	case <-time.After(limit):
		t.Fatalf("Open(%s, %+v) still waiting after %s", path, opts, limit)
		return nil, nil
	}
}
