package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrLocked reports that another certsync holds the state file (or the agent
// lock next to it). Test for it with errors.Is.
var ErrLocked = errors.New("state file is held by another certsync")

// schemaVersion is the layout of the file this code reads and writes. Bump it
// (and migrate in checkSchema) whenever a stored encoding changes
// incompatibly; an older certsync then refuses the file instead of
// misreading it.
//
// Version 2 added bucket briefs (briefs.go): a certsync of version 1 would
// write records without their briefs.
const schemaVersion = 2

// Bucket and key names. Strings, not []byte vars, so that nothing at package
// level can be mutated.
const (
	bucketSchema = "schema" // keyVersion → decimal schema version
	bucketUsers  = "users"  // anchor → recordV1 JSON
	bucketPass   = "pass"   // keyLastPass → passV1 JSON; keyGeneration, keyBackedUp → uint64 (backup.go)
	bucketMeta   = "meta"   // caller's key → caller's JSON
	bucketBriefs = "briefs" // anchor → brief (briefs.go), one per record
	keyVersion   = "version"
	keyLastPass  = "last"
	// keyGeneration counts the commits that changed records;
	// keyBackedUp is the generation the last backup copied.
	keyGeneration = "generation"
	keyBackedUp   = "backedUp"
)

// dataBuckets are the buckets a current file must have besides bucketSchema.
func dataBuckets() []string { return []string{bucketUsers, bucketPass, bucketMeta, bucketBriefs} }

// defaultLockTimeout bounds the wait for bbolt's file lock when
// Options.Timeout is 0: long enough to ride out `certsync status` reading,
// short enough that a second agent fails visibly.
const defaultLockTimeout = time.Second

// Options for Open.
type Options struct {
	// Timeout bounds the wait for bbolt's file lock; 0 means 1s, a negative
	// value tries once. Never wait forever (bbolt's default).
	Timeout time.Duration
	// ReadOnly takes a shared lock and allows no writes (used by
	// `certsync status`). Several read-only stores may be open at once;
	// none while a writer has the file.
	ReadOnly bool
}

// Store is an open state file. Its methods are safe for concurrent use, but
// a ForEach callback must not call the write methods (bbolt would deadlock
// when the file grows while the read transaction is open).
type Store struct {
	db   *bolt.DB // non-nil
	path string   // as given to Open
	// removeOnClose: the file is OpenSnapshot's private copy.
	removeOnClose bool
	readOnly      bool // opened with Options.ReadOnly
	// touches counts keys read through bbolt's memory map, for touched.
	touches atomic.Int64
}

// touched notes n keys read through the memory map, inside the open
// transaction tx; every releaseEvery of them, the pages the map holds
// resident are given back (releaseMapped), so the agent's memory does not
// grow with the state file however many users a pass reads. Writes are
// bounded by pages instead (dirtyBudget): a commit reads every page it
// changed through the map again, so releasing in between would only map
// them twice.
func (s *Store) touched(tx *bolt.Tx, n int) {
	after := s.touches.Add(int64(n))
	if after/releaseEvery != (after-int64(n))/releaseEvery {
		releaseMapped(s.db, tx)
	}
}

// committed gives back the pages a write transaction's commit touched
// through the map: freeing a page it rewrote reads that page's header
// there, and the kernel maps 64 KiB around each such read. It runs once
// the commit is done, in a read transaction of its own (which keeps the
// map in place).
func (s *Store) committed() {
	_ = s.db.View(func(tx *bolt.Tx) error {
		releaseMapped(s.db, tx)
		return nil
	})
}

// lockedError keeps the exact, human message while matching ErrLocked.
type lockedError struct{ msg string }

func (e *lockedError) Error() string { return e.msg }
func (e *lockedError) Unwrap() error { return ErrLocked }

// Open opens (or, unless ReadOnly, creates) the state file at path.
//
// The parent directory is created with mode 0700 and the file with 0600.
// ReadOnly on a missing file returns an error wrapping fs.ErrNotExist. When
// another process holds the file longer than Options.Timeout, the error
// wraps ErrLocked and names the file.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("state: open: empty state file path")
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = defaultLockTimeout
	}

	if err := checkDamage(path); err != nil {
		return nil, err
	}
	if opts.ReadOnly {
		// bbolt would report a bare "no such file"; say what it means here.
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("state: %s does not exist (no certsync pass has written it yet): %w", path, fs.ErrNotExist)
			}
			return nil, fmt.Errorf("state: open %s: %w", path, err)
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state: create directory for %s: %w", path, err)
	}

	db, err := openBolt(path, &bolt.Options{Timeout: timeout, ReadOnly: opts.ReadOnly})
	if errors.Is(err, ErrDamaged) {
		return nil, err
	}
	if err != nil {
		return nil, openError(path, timeout, opts.ReadOnly, err)
	}
	if err := checkPages(db, path); err != nil {
		_ = db.Close()
		return nil, err
	}
	s := &Store{db: db, path: path, readOnly: opts.ReadOnly}
	if err := s.checkSchema(opts.ReadOnly); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// openError turns bbolt's open failures into messages naming the file.
func openError(path string, timeout time.Duration, readOnly bool, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return &lockedError{msg: fmt.Sprintf("state: another certsync holds %s (waited %s for its lock)", path, max(timeout, 0))}
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return fmt.Errorf("state: %s is not a certsync state file (not a readable bbolt database): %w", path, err)
	}
	if readOnly {
		// bbolt initialises an empty file in place, which a read-only
		// handle cannot do; its error would only say "bad file descriptor".
		if fi, statErr := os.Stat(path); statErr == nil && fi.Size() == 0 {
			return fmt.Errorf("state: %s is empty (no certsync pass has written it yet): %w", path, err)
		}
	}
	return fmt.Errorf("state: open %s: %w", path, err)
}

// checkSchema refuses files this code cannot read and, unless readOnly,
// creates the buckets of a new file. It writes nothing when the file is
// already current, so opening costs no fsync.
func (s *Store) checkSchema(readOnly bool) error {
	var initialise bool
	err := s.db.View(func(tx *bolt.Tx) error {
		sb := tx.Bucket([]byte(bucketSchema))
		if sb == nil {
			// A bbolt file of some other program: never write into it.
			if name, _ := tx.Cursor().First(); name != nil {
				return fmt.Errorf("state: %s is not a certsync state file (a bbolt database with bucket %q and no certsync schema version)", s.path, name)
			}
			initialise = true
			return nil
		}
		v, err := readVersion(sb)
		if err != nil {
			return fmt.Errorf("state: %s: %w", s.path, err)
		}
		if v > schemaVersion {
			return fmt.Errorf("state: %s has schema version %d, this certsync understands version %d only (a newer certsync wrote it)", s.path, v, schemaVersion)
		}
		for _, name := range dataBuckets() {
			if tx.Bucket([]byte(name)) == nil {
				initialise = true
			}
		}
		return nil
	})
	if err != nil || !initialise || readOnly {
		// A read-only store of a new, empty file reads as empty: every
		// reader treats a missing bucket as no data.
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		sb, err := tx.CreateBucketIfNotExists([]byte(bucketSchema))
		if err != nil {
			return err
		}
		if tx.Bucket([]byte(bucketBriefs)) == nil {
			// Schema 1 (or a new file): every record gets its brief.
			if err := buildBriefs(tx); err != nil {
				return fmt.Errorf("building the briefs: %w", err)
			}
		}
		if v, err := readVersion(sb); err != nil || v < schemaVersion {
			if err := sb.Put([]byte(keyVersion), []byte(strconv.Itoa(schemaVersion))); err != nil {
				return err
			}
		}
		for _, name := range dataBuckets() {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: initialise %s: %w", s.path, err)
	}
	return nil
}

func readVersion(sb *bolt.Bucket) (int, error) {
	raw := sb.Get([]byte(keyVersion))
	if raw == nil {
		return 0, errors.New("schema bucket without a version key")
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return 0, fmt.Errorf("unknown schema version %q (this certsync understands version %d)", raw, schemaVersion)
	}
	return v, nil
}

// Path is the state file's path as given to Open.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock. Closing twice is harmless.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close %s: %w", s.path, err)
	}
	if s.removeOnClose {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state: remove snapshot %s: %w", s.path, err)
		}
	}
	return nil
}
