package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"
)

// Backup copies the state file, as of its last commit, to path.bak:
// written beside it and renamed into place, so the backup is always a
// whole file. The agent calls it after each successful pass.
//
// The copy is skipped when no record changed since the last one (the
// file's generation, counted by Commit, is the one the backup copied) and
// the backup is still there: a pass that changed nothing would otherwise
// copy the whole file, 113 MiB at 100,000 users, most of a nothing-changed
// pass's system time. What such a backup lacks is only meta: watermarks
// (a restored file re-reads changes since an earlier one), the last
// pass's summary, settled marks and remembered chains (caches).
func (s *Store) Backup() error {
	dst := s.path + BackupSuffix
	var gen, backedUp uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		gen, backedUp = generations(tx)
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: backup %s: %w", s.path, err)
	}
	if gen == backedUp {
		if _, err := os.Stat(dst); err == nil {
			return nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state: backup %s: %w", s.path, err)
		}
	}
	tmp := dst + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("state: backup %s: %w", s.path, err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		gen, _ = generations(tx) // the generation copied
		_, err := tx.WriteTo(f)
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("state: backup %s to %s: %w", s.path, dst, err)
	}
	if s.readOnly {
		return nil
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucketPass))
		if err != nil {
			return err
		}
		return b.Put([]byte(keyBackedUp), binary.BigEndian.AppendUint64(nil, gen))
	})
	if err != nil {
		// The copy is whole; the next pass only copies again.
		return fmt.Errorf("state: note the backup of %s: %w", s.path, err)
	}
	return nil
}

// generations reads the file's generation and the one its backup copied
// (0 for a file written before they were counted: its backup was made
// after every pass).
func generations(tx *bolt.Tx) (gen, backedUp uint64) {
	b := tx.Bucket([]byte(bucketPass))
	if b == nil {
		return 0, 0
	}
	read := func(key string) uint64 {
		if v := b.Get([]byte(key)); len(v) == 8 {
			return binary.BigEndian.Uint64(v)
		}
		return 0
	}
	return read(keyGeneration), read(keyBackedUp)
}

// bumpGeneration counts a commit that changes records, inside it.
func bumpGeneration(tx *bolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists([]byte(bucketPass))
	if err != nil {
		return err
	}
	gen, _ := generations(tx)
	return b.Put([]byte(keyGeneration), binary.BigEndian.AppendUint64(nil, gen+1))
}
