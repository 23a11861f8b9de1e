package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PassSummary is what the last pass did, for `certsync status`.
type PassSummary struct {
	Started, Finished time.Time
	Mode              string // "full", "user"
	Result            string // "ok", "changes", "failed", "refused" (deletion guard), "partial" (some users failed)
	Error             string

	UsersRead, UsersChanged, UsersFailed, UsersUnmatched int
	ValuesAdded, ValuesRemoved, CertificatesRejected     int
	UsersSkipped                                         int

	// Sources is each directory's part of the pass; empty in summaries
	// written before certsync read several directories.
	Sources []SourcePass
}

// SourcePass is one directory's part of a pass.
type SourcePass struct {
	Name      string `json:"name"`
	Mode      string `json:"mode"`            // "full", "incremental", "user"
	UsersRead int    `json:"usersRead"`       // from this directory
	Error     string `json:"error,omitempty"` // the read failed: nothing of this directory changed
}

// passV1 is the stored form of a PassSummary (schema version 1).
type passV1 struct {
	Started              time.Time    `json:"started,omitzero"`
	Finished             time.Time    `json:"finished,omitzero"`
	Mode                 string       `json:"mode,omitempty"`
	Result               string       `json:"result,omitempty"`
	Error                string       `json:"error,omitempty"`
	UsersRead            int          `json:"usersRead,omitempty"`
	UsersChanged         int          `json:"usersChanged,omitempty"`
	UsersFailed          int          `json:"usersFailed,omitempty"`
	UsersUnmatched       int          `json:"usersUnmatched,omitempty"`
	ValuesAdded          int          `json:"valuesAdded,omitempty"`
	ValuesRemoved        int          `json:"valuesRemoved,omitempty"`
	CertificatesRejected int          `json:"certificatesRejected,omitempty"`
	UsersSkipped         int          `json:"usersSkipped,omitempty"`
	Sources              []SourcePass `json:"sources,omitempty"`
}

// SetLastPass replaces the stored summary of the last pass.
func (s *Store) SetLastPass(p PassSummary) error {
	raw, err := json.Marshal(passV1(p))
	if err != nil {
		return fmt.Errorf("state: encode last pass for %s: %w", s.path, err)
	}
	if err := s.put(bucketPass, keyLastPass, raw); err != nil {
		return fmt.Errorf("state: store last pass in %s: %w", s.path, err)
	}
	return nil
}

// LastPass returns the stored summary; false when no pass was recorded yet.
func (s *Store) LastPass() (PassSummary, bool, error) {
	var p passV1
	found, err := s.get(bucketPass, keyLastPass, &p)
	if err != nil {
		return PassSummary{}, false, fmt.Errorf("state: read last pass from %s: %w", s.path, err)
	}
	return PassSummary(p), found, nil
}

// SetMeta stores v, JSON-encoded, under key in the meta area (watermarks and
// the like). The caller owns the encoding of v: keep it stable.
func (s *Store) SetMeta(key string, v any) error {
	if key == "" {
		return errors.New("state: set meta: empty key")
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state: encode meta %q for %s: %w", key, s.path, err)
	}
	if err := s.put(bucketMeta, key, raw); err != nil {
		return fmt.Errorf("state: store meta %q in %s: %w", key, s.path, err)
	}
	return nil
}

// Meta decodes the value stored under key into v (a pointer); false, with v
// untouched, when the key is absent.
func (s *Store) Meta(key string, v any) (bool, error) {
	if key == "" {
		return false, errors.New("state: meta: empty key")
	}
	found, err := s.get(bucketMeta, key, v)
	if err != nil {
		return false, fmt.Errorf("state: read meta %q from %s: %w", key, s.path, err)
	}
	return found, nil
}

func (s *Store) put(bucket, key string, raw []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), raw)
	})
}

// get decodes inside the transaction: bbolt's bytes are valid only there.
func (s *Store) get(bucket, key string, v any) (bool, error) {
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		raw := b.Get([]byte(key))
		if raw == nil {
			return nil
		}
		found = true
		return json.Unmarshal(raw, v)
	})
	if err != nil {
		return false, err
	}
	return found, nil
}
