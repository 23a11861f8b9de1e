package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketChains remembers verified signature chains: certificate SHA-256 →
// chainV1. A cache: losing it costs one pass's signature checks, nothing
// else; a file without the bucket reads as remembering nothing.
const bucketChains = "chains"

// Chain is one certificate's verified signature chain (mapping's
// VerifiedChain): the SHA-256 sums of its CA certificates, issuer first,
// and the instants between which it holds. Expires is the certificate's
// own notAfter: the chain is forgotten after it.
type Chain struct {
	CAs                  [][sha256.Size]byte
	From, Until, Expires time.Time
}

// chainV1 is the stored form: a version byte, From, Until and Expires as
// big-endian Unix seconds (X.509 times have whole seconds), then the sums.
const (
	chainV1       = 1
	chainV1Header = 1 + 3*8
)

func encodeChain(c Chain) []byte {
	b := make([]byte, chainV1Header, chainV1Header+len(c.CAs)*sha256.Size)
	b[0] = chainV1
	for i, t := range []time.Time{c.From, c.Until, c.Expires} {
		binary.BigEndian.PutUint64(b[1+8*i:], uint64(t.Unix()))
	}
	for _, s := range c.CAs {
		b = append(b, s[:]...)
	}
	return b
}

func decodeChain(b []byte) (Chain, error) {
	if len(b) < chainV1Header || b[0] != chainV1 || (len(b)-chainV1Header)%sha256.Size != 0 {
		return Chain{}, errors.New("not a version 1 chain")
	}
	var t [3]time.Time
	for i := range t {
		t[i] = time.Unix(int64(binary.BigEndian.Uint64(b[1+8*i:])), 0).UTC()
	}
	c := Chain{From: t[0], Until: t[1], Expires: t[2], CAs: make([][sha256.Size]byte, (len(b)-chainV1Header)/sha256.Size)}
	for i := range c.CAs {
		copy(c.CAs[i][:], b[chainV1Header+i*sha256.Size:])
	}
	return c, nil
}

// HasChains reports whether any chain is remembered.
func (s *Store) HasChains() (bool, error) {
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucketChains)); b != nil {
			k, _ := b.Cursor().First()
			found = k != nil
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("state: read the chains of %s: %w", s.path, err)
	}
	return found, nil
}

// Chain returns the chain remembered for the certificate whose DER has
// SHA-256 sum. A stored value that does not decode is reported as not
// found: the caller verifies again and PutChains overwrites it.
func (s *Store) Chain(sum [sha256.Size]byte) (Chain, bool, error) {
	var c Chain
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketChains))
		if b == nil {
			return nil
		}
		raw := b.Get(sum[:])
		s.touched(tx, 1)
		if raw == nil {
			return nil
		}
		var err error
		c, err = decodeChain(raw)
		found = err == nil
		return nil
	})
	if err != nil {
		return Chain{}, false, fmt.Errorf("state: read the chain of certificate %x from %s: %w", sum, s.path, err)
	}
	return c, found, nil
}

// PutChains remembers chains and, when prune is set, forgets those of
// certificates that expired before now. It writes dirtyBudget pages a
// transaction: a failure part way leaves the chains before it
// remembered, which is all a cache needs.
func (s *Store) PutChains(chains map[[sha256.Size]byte]Chain, prune bool, now time.Time) error {
	puts := make([]kv, 0, len(chains))
	for sum, c := range chains {
		puts = append(puts, kv{append([]byte(nil), sum[:]...), encodeChain(c)})
	}
	if err := s.writeBucket(bucketChains, puts); err != nil {
		return fmt.Errorf("state: remember %d verified certificate chains in %s: %w", len(chains), s.path, err)
	}
	if !prune {
		return nil
	}
	var expired []kv
	err := s.db.View(func(tx *bolt.Tx) error {
		defer releaseMapped(s.db, tx)
		b := tx.Bucket([]byte(bucketChains))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			s.touched(tx, 1)
			if c, err := decodeChain(v); err != nil || c.Expires.Before(now) {
				expired = append(expired, kv{k: append([]byte(nil), k...)})
			}
			return nil
		})
	})
	if err == nil {
		err = s.writeBucket(bucketChains, expired)
	}
	if err != nil {
		return fmt.Errorf("state: forget expired certificate chains in %s: %w", s.path, err)
	}
	return nil
}

// writeBucket puts kvs (a nil value: deletes the key) in the bucket name,
// creating it, in key order, dirtyBudget pages a transaction.
func (s *Store) writeBucket(name string, kvs []kv) error {
	slices.SortStableFunc(kvs, func(x, y kv) int { return bytes.Compare(x.k, y.k) })
	_, err := s.writeInParts(len(kvs), func(tx *bolt.Tx, _ bool) (func(i int) error, error) {
		b, err := tx.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return nil, err
		}
		return func(i int) error {
			if kvs[i].v == nil {
				return b.Delete(kvs[i].k)
			}
			return b.Put(kvs[i].k, kvs[i].v)
		}, nil
	}, nil)
	return err
}

// Writable reports whether the store takes writes (not opened ReadOnly).
func (s *Store) Writable() bool { return !s.readOnly }
