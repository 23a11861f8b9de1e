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

// Brief is what a pass needs of a user's record without reading the
// record: kept in bucket "briefs" beside every record and written in the
// same transaction, so a pass over an unchanged directory touches a few
// dozen bytes per user instead of the whole record.
type Brief struct {
	Anchor string
	Source string // Record.Source
	// Held names the targets holding values certsync published
	// (TargetRecord.Values), sorted.
	Held []string
	// Pending: some target has values about to be written.
	Pending bool
	// Settled, when set, says that the record was in line with what the
	// user's directory values wanted, judged as Settled.Inputs says; any
	// later write of the record drops it.
	Settled *Settled
}

// HoldsValues reports whether certsync published, or is about to
// publish, values for the user.
func (b Brief) HoldsValues() bool { return len(b.Held) > 0 || b.Pending }

// Settled is a remembered judgement of a user whose record needed no
// change: while the user's directory values and everything that judges
// them digest to Inputs and it is before Until, the user needs nothing.
type Settled struct {
	Inputs [sha256.Size]byte
	Until  time.Time // zero: no time limit
	// NotAfter are the accepted certificates' expiry times (for the
	// expiring-soon count of a pass that does not judge them again).
	NotAfter []time.Time
}

// briefOf is the brief of rec, without Settled.
func briefOf(rec Record) Brief {
	b := Brief{Anchor: rec.Anchor, Source: rec.Source}
	for name, t := range rec.Targets {
		if len(t.Values) > 0 {
			b.Held = append(b.Held, name)
		}
		b.Pending = b.Pending || len(t.Pending) > 0
	}
	slices.Sort(b.Held)
	return b
}

// The stored form: a version byte, then length-prefixed fields (uvarint
// lengths, varint seconds and uvarint nanoseconds for times).
const (
	briefVersion   = 1
	briefPending   = 1 << 0
	briefSettled   = 1 << 1
	maxBriefFields = 1024 // targets or certificates: far above any real user
)

func encodeBrief(b Brief) []byte {
	out := []byte{briefVersion}
	str := func(s string) {
		out = binary.AppendUvarint(out, uint64(len(s)))
		out = append(out, s...)
	}
	tm := func(t time.Time) {
		if t.IsZero() {
			out = append(out, 0)
			return
		}
		out = append(out, 1)
		out = binary.AppendVarint(out, t.Unix())
		out = binary.AppendUvarint(out, uint64(t.Nanosecond()))
	}
	str(b.Source)
	out = binary.AppendUvarint(out, uint64(len(b.Held)))
	for _, h := range b.Held {
		str(h)
	}
	var flags byte
	if b.Pending {
		flags |= briefPending
	}
	if b.Settled != nil {
		flags |= briefSettled
	}
	out = append(out, flags)
	if s := b.Settled; s != nil {
		out = append(out, s.Inputs[:]...)
		tm(s.Until)
		out = binary.AppendUvarint(out, uint64(len(s.NotAfter)))
		for _, t := range s.NotAfter {
			tm(t)
		}
	}
	return out
}

var errShortBrief = errors.New("truncated")

// briefReader reads the stored form; the first error sticks.
type briefReader struct {
	b   []byte
	err error
}

func (r *briefReader) uvarint(limit uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	switch {
	case n <= 0:
		r.err = errShortBrief
		return 0
	case v > limit:
		r.err = fmt.Errorf("count %d over %d", v, limit)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *briefReader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)) < n {
		r.err = errShortBrief
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *briefReader) str() string { return string(r.bytes(r.uvarint(uint64(len(r.b))))) }

func (r *briefReader) time() time.Time {
	set := r.bytes(1)
	switch {
	case r.err != nil || set[0] == 0:
		return time.Time{}
	case set[0] != 1:
		r.err = fmt.Errorf("time marker %d", set[0])
		return time.Time{}
	}
	sec, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShortBrief
		return time.Time{}
	}
	r.b = r.b[n:]
	nsec := r.uvarint(999_999_999)
	return time.Unix(sec, int64(nsec)).UTC()
}

func decodeBrief(anchor, raw []byte) (Brief, error) {
	fail := func(err error) (Brief, error) {
		return Brief{}, fmt.Errorf("state: decode brief of anchor %s: %w", anchorText(anchor), err)
	}
	if len(raw) == 0 || raw[0] != briefVersion {
		return fail(errors.New("unknown brief version"))
	}
	r := &briefReader{b: raw[1:]}
	b := Brief{Anchor: string(anchor), Source: r.str()}
	for range r.uvarint(maxBriefFields) {
		b.Held = append(b.Held, r.str())
	}
	flags := r.bytes(1)
	if r.err == nil {
		if flags[0]&^(briefPending|briefSettled) != 0 {
			return fail(fmt.Errorf("unknown flags %#x", flags[0]))
		}
		b.Pending = flags[0]&briefPending != 0
		if flags[0]&briefSettled != 0 {
			s := &Settled{}
			copy(s.Inputs[:], r.bytes(sha256.Size))
			s.Until = r.time()
			for range r.uvarint(maxBriefFields) {
				s.NotAfter = append(s.NotAfter, r.time())
			}
			b.Settled = s
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes after the end", len(r.b))
	}
	if r.err != nil {
		return fail(r.err)
	}
	return b, nil
}

// Brief returns the brief of anchor; false (and no error) when the state
// holds no record for it.
func (s *Store) Brief(anchor string) (Brief, bool, error) { return readOne(s.Briefs, anchor) }

// Briefs is Brief for a batch of anchors, read in one transaction: a pass
// looks users up a batch at a time, and a transaction per user cost as
// much as the lookups. fn gets each anchor's number in anchors, its
// brief, whether there is one, and why it could not be read; it runs
// inside the read transaction and must not use the Store.
func (s *Store) Briefs(anchors []string, fn func(i int, b Brief, found bool, err error)) {
	viewBatch(s, anchors, bucketBriefs, s.briefIn, fn, func(anchor string, err error) error {
		return fmt.Errorf("state: brief of %s in %s: %w", anchorText(anchor), s.path, err)
	})
}

// readOne is a batch read (Briefs, Records) of one anchor.
func readOne[T any](batch func([]string, func(int, T, bool, error)), anchor string) (T, bool, error) {
	var (
		v     T
		found bool
		err   error
	)
	batch([]string{anchor}, func(_ int, got T, ok bool, e error) { v, found, err = got, ok, e })
	return v, found, err
}

// viewBatch reads each of anchors with read in one read transaction (b:
// the bucket named bucket, nil when there is none) and hands fn what it
// found, each error wrapped by wrap; when the transaction itself fails,
// every anchor not yet read gets that error.
func viewBatch[T any](s *Store, anchors []string, bucket string, read func(*bolt.Tx, *bolt.Bucket, string) (T, bool, error),
	fn func(int, T, bool, error), wrap func(anchor string, err error) error) {
	done := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		for i, anchor := range anchors {
			v, found, err := read(tx, b, anchor)
			if err != nil {
				err = wrap(anchor, err)
			}
			fn(i, v, found, err)
			done = i + 1
		}
		return nil
	})
	var zero T
	for i := done; i < len(anchors); i++ {
		fn(i, zero, false, wrap(anchors[i], err))
	}
}

// briefIn reads anchor's brief in tx; bb is the briefs bucket, nil in a
// file of schema 1 opened read-only, where the record says it.
func (s *Store) briefIn(tx *bolt.Tx, bb *bolt.Bucket, anchor string) (Brief, bool, error) {
	if anchor == "" {
		return Brief{}, false, errors.New("empty anchor")
	}
	if bb == nil {
		raw := bucketGet(tx, bucketUsers, anchor)
		if raw == nil {
			return Brief{}, false, nil
		}
		rec, err := decodeRecord([]byte(anchor), raw)
		return briefOf(rec), err == nil, err
	}
	raw := bb.Get([]byte(anchor))
	s.touched(tx, 1)
	if raw == nil {
		return Brief{}, false, nil
	}
	b, err := decodeBrief([]byte(anchor), raw)
	return b, err == nil, err
}

// ForEachBrief calls fn for every user's brief, in byte order of the
// anchors, inside one read transaction. It has ForEach's rules.
func (s *Store) ForEachBrief(fn func(Brief) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		bb := tx.Bucket([]byte(bucketBriefs))
		if bb == nil {
			err := recordBriefs(tx, func(_ []byte, b Brief) error { return fn(b) })
			if err != nil {
				return fmt.Errorf("%w (in %s)", err, s.path)
			}
			return nil
		}
		return bb.ForEach(func(k, v []byte) error {
			s.touched(tx, 1)
			b, err := decodeBrief(k, v)
			if err != nil {
				return fmt.Errorf("%w (in %s)", err, s.path)
			}
			return fn(b)
		})
	})
}

func bucketGet(tx *bolt.Tx, bucket, key string) []byte {
	b := tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.Get([]byte(key))
}

// buildBriefs writes the brief of every record (a file of schema 1
// becoming schema 2).
func buildBriefs(tx *bolt.Tx) error {
	bb, err := tx.CreateBucketIfNotExists([]byte(bucketBriefs))
	if err != nil {
		return err
	}
	return recordBriefs(tx, func(k []byte, b Brief) error { return bb.Put(bytes.Clone(k), encodeBrief(b)) })
}

// recordBriefs calls fn with the brief of every record, worked out from
// the record.
func recordBriefs(tx *bolt.Tx, fn func(anchor []byte, b Brief) error) error {
	ub := tx.Bucket([]byte(bucketUsers))
	if ub == nil {
		return nil
	}
	return ub.ForEach(func(k, v []byte) error {
		rec, err := decodeRecord(k, v)
		if err != nil {
			return err
		}
		return fn(k, briefOf(rec))
	})
}
