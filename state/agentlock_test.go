package state

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestLockAgent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "state.db")
	lockPath := path + ".lock"

	unlock, err := LockAgent(path)
	if err != nil {
		t.Fatalf("first LockAgent: %v", err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(lockPath)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", lockPath, fi.Mode().Perm())
		}
	}

	// The second agent is told at once, not after a timeout.
	done := make(chan error, 1)
	go func() {
		_, err := LockAgent(path)
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("second LockAgent is waiting; it must not block")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second LockAgent: %v, want ErrLocked", err)
	}
	for _, w := range []string{path, lockPath} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}

	// The agent opens and closes the store while it holds its own lock.
	s := openTest(t, path, Options{Timeout: time.Second})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		if err := unlock(); err != nil {
			t.Fatalf("unlock #%d: %v", i+1, err)
		}
	}
	unlock2, err := LockAgent(path)
	if err != nil {
		t.Fatalf("LockAgent after unlock: %v", err)
	}
	if err := unlock2(); err != nil {
		t.Fatal(err)
	}
}

func TestLockAgentOtherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	h := startHolder(t, path, "agent")
	_, err := LockAgent(path)
	checkLockErr(t, err, true, path, path+".lock")
	h.release(t)
	unlock, err := LockAgent(path)
	if err != nil {
		t.Fatalf("LockAgent after the holder exited: %v", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestLockAgentEmptyPath(t *testing.T) {
	if _, err := LockAgent(""); err == nil {
		t.Error("LockAgent(\"\") succeeded")
	}
}
