package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gofrs/flock"
)

// LockAgent takes an exclusive, non-blocking lock on path+".lock" for the
// lifetime of an agent. bbolt's own lock lasts only while the file is open,
// and the agent closes it between passes so that `certsync status` can read
// it; this lock keeps a second agent off the same state file meanwhile.
//
// When another process holds it, the error wraps ErrLocked, names the state
// file and the lock file, and comes at once. The lock file is left on disk
// after unlock (removing it would race with the next agent taking it).
// unlock may be called more than once.
func LockAgent(path string) (unlock func() error, err error) {
	if path == "" {
		return nil, errors.New("state: lock agent: empty state file path")
	}
	lockPath := path + ".lock"
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o700); err != nil {
		return nil, fmt.Errorf("state: create directory for %s: %w", lockPath, err)
	}
	fl := flock.New(lockPath, flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("state: lock %s: %w", lockPath, err)
	}
	if !ok {
		return nil, &lockedError{msg: fmt.Sprintf("state: another certsync agent is running on %s (it holds %s)", path, lockPath)}
	}
	return func() error {
		if err := fl.Unlock(); err != nil {
			return fmt.Errorf("state: unlock %s: %w", lockPath, err)
		}
		return nil
	}, nil
}
