package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// TargetRecord is what certsync published to one cloud target of one user.
type TargetRecord struct {
	CloudID string   // the cloud account the values were written to
	Values  []string // values certsync published and the cloud confirmed (it owns them)
	Pending []string // values certsync is about to write (recorded before the write, cleared after)
	// Kept are values certsync wants that the cloud already held without
	// certsync publishing them (put there by an admin or Entra Connect):
	// not owned, but no reason to look the user up again.
	Kept []string
	// GoneSince is when the account of a user who left the directory was
	// first found missing from the cloud (deleted, maybe only soft-deleted
	// and restorable): the values stay certsync's until it comes back or
	// the service's retention is over.
	GoneSince time.Time
}

// Record is everything the state file keeps about one directory user.
//
// Stored as given, with these normalisations: nil and empty slices (and
// maps) both read back as nil; times keep their instant and UTC offset but
// not their Location or monotonic reading (compare them with
// time.Time.Equal); invalid UTF-8 in DN, Name and Problem (text for people)
// reads back with U+FFFD in its place. Target names, CloudID, Values and
// Pending decide ownership and must round-trip exactly: Update refuses
// invalid UTF-8 there. The anchor is the raw bbolt key: any bytes.
type Record struct {
	Anchor string // the key: immutable directory id (objectGUID, entryUUID); never empty
	// Source names the directory the user was read from (the agent's
	// source name); "" in files written before certsync read several
	// directories.
	Source    string
	DN        string
	Name      string                  // mail/UPN, for people
	Targets   map[string]TargetRecord // by target name, e.g. "graph.certificateUserIds"
	Problem   string                  // last per-user problem, "" when fine
	ProblemAt time.Time
	UpdatedAt time.Time
}

// recordV1 is the stored form of a Record (schema version 1). The anchor is
// the bbolt key, not repeated in the value. Short, stable JSON names: they
// are the file format.
type recordV1 struct {
	Source    string              `json:"source,omitempty"`
	DN        string              `json:"dn,omitempty"`
	Name      string              `json:"name,omitempty"`
	Targets   map[string]targetV1 `json:"targets,omitempty"`
	Problem   string              `json:"problem,omitempty"`
	ProblemAt time.Time           `json:"problemAt,omitzero"`
	UpdatedAt time.Time           `json:"updatedAt,omitzero"`
}

type targetV1 struct {
	CloudID string   `json:"cloudId,omitempty"`
	Values  []string `json:"values,omitempty"`
	Pending []string `json:"pending,omitempty"`
	Kept    []string `json:"kept,omitempty"`
	// GoneSince: TargetRecord.GoneSince.
	GoneSince time.Time `json:"goneSince,omitzero"`
}

// problemKey occurs in a stored record exactly when Problem is not empty
// (omitempty), and never inside a JSON string (quotes are escaped there), so
// Problems can skip decoding the fine records. A target named "problem" also
// matches; the decoded record settles it.
const problemKey = `"problem":`

// anchorText quotes an anchor for an error message, cut short when it is
// too long to be a real one (which is then the error).
func anchorText[T string | []byte](anchor T) string {
	const limit = 64
	if len(anchor) <= limit {
		return fmt.Sprintf("%q", anchor)
	}
	return fmt.Sprintf("%q… (%d bytes)", anchor[:limit], len(anchor))
}

func encodeRecord(r Record) ([]byte, error) {
	// encoding/json would silently replace invalid UTF-8; a changed value
	// would no longer match what was published and never be removed.
	for name, t := range r.Targets {
		if !utf8.ValidString(name) {
			return nil, fmt.Errorf("target name %q is not valid UTF-8", name)
		}
		if !utf8.ValidString(t.CloudID) {
			return nil, fmt.Errorf("target %s: cloud id %q is not valid UTF-8", name, t.CloudID)
		}
		for _, v := range slices.Concat(t.Values, t.Pending, t.Kept) {
			if !utf8.ValidString(v) {
				return nil, fmt.Errorf("target %s: value %q is not valid UTF-8", name, v)
			}
		}
	}
	v := recordV1{
		Source:    r.Source,
		DN:        r.DN,
		Name:      r.Name,
		Problem:   r.Problem,
		ProblemAt: r.ProblemAt,
		UpdatedAt: r.UpdatedAt,
	}
	if len(r.Targets) > 0 {
		v.Targets = make(map[string]targetV1, len(r.Targets))
		for name, t := range r.Targets {
			v.Targets[name] = targetV1(t)
		}
	}
	return json.Marshal(v)
}

func decodeRecord(anchor, raw []byte) (Record, error) {
	var v recordV1
	if err := json.Unmarshal(raw, &v); err != nil {
		return Record{}, fmt.Errorf("state: decode record of anchor %s: %w", anchorText(anchor), err)
	}
	r := Record{
		Anchor:    string(anchor),
		Source:    v.Source,
		DN:        v.DN,
		Name:      v.Name,
		Problem:   v.Problem,
		ProblemAt: v.ProblemAt,
		UpdatedAt: v.UpdatedAt,
	}
	if len(v.Targets) > 0 {
		r.Targets = make(map[string]TargetRecord, len(v.Targets))
		for name, t := range v.Targets {
			r.Targets[name] = TargetRecord(t)
		}
	}
	return r, nil
}

// Get returns the record of anchor; false (and no error) when there is none.
func (s *Store) Get(anchor string) (Record, bool, error) { return readOne(s.Records, anchor) }

// Records is Get for a batch of anchors, read in one transaction, as
// Briefs; fn runs inside it and must not use the Store.
func (s *Store) Records(anchors []string, fn func(i int, r Record, found bool, err error)) {
	viewBatch(s, anchors, bucketUsers, s.recordIn, fn, func(anchor string, err error) error {
		return fmt.Errorf("state: get %s from %s: %w", anchorText(anchor), s.path, err)
	})
}

// recordIn reads anchor's record in tx from the users bucket b (nil:
// none yet).
func (s *Store) recordIn(tx *bolt.Tx, b *bolt.Bucket, anchor string) (Record, bool, error) {
	if anchor == "" {
		return Record{}, false, errors.New("empty anchor")
	}
	if b == nil {
		return Record{}, false, nil
	}
	raw := b.Get([]byte(anchor))
	s.touched(tx, 1)
	if raw == nil {
		return Record{}, false, nil
	}
	r, err := decodeRecord([]byte(anchor), raw)
	return r, err == nil, err
}

// ForEach calls fn for every record, in byte order of the anchors, inside one
// read transaction (a consistent snapshot). An error from fn stops the walk
// and is returned unchanged. fn must not call the Store's write methods.
func (s *Store) ForEach(fn func(Record) error) error {
	return s.scan(nil, fn)
}

// scan walks the users bucket; when filter is set, only values containing
// it are decoded.
func (s *Store) scan(filter []byte, fn func(Record) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketUsers))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			s.touched(tx, 1)
			if filter != nil && !bytes.Contains(v, filter) {
				return nil
			}
			r, err := decodeRecord(k, v)
			if err != nil {
				return fmt.Errorf("%w (in %s)", err, s.path)
			}
			return fn(r)
		})
	})
}

// Count is the number of user records: the keys of the briefs (one per
// record, fewer pages) when the file has them, counted by walking them,
// so that the pages read are released as it goes (touched); bbolt's
// Stats would map the whole bucket at once.
func (s *Store) Count() (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketBriefs))
		if b == nil {
			b = tx.Bucket([]byte(bucketUsers))
		}
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
			s.touched(tx, 1)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("state: count records in %s: %w", s.path, err)
	}
	return n, nil
}

// Problems returns the records whose Problem is set, in anchor order.
func (s *Store) Problems() ([]Record, error) {
	var out []Record
	err := s.scan([]byte(problemKey), func(r Record) error {
		if r.Problem != "" {
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Update writes puts (whole records, replacing any previous record of the
// same anchor) and removes deletes, with Commit's rules.
func (s *Store) Update(puts []Record, deletes []string) error {
	return s.Commit(Commit{Puts: puts, Deletes: deletes})
}

// Commit is one change to the state: records, the settled marks of
// records, and meta values (a change-tracking watermark, say). Each
// record lands whole, with its brief; the meta values land only with the
// last of the records, so a watermark never runs ahead of the results it
// covers.
type Commit struct {
	Puts    []Record
	Deletes []string
	// Meta values are JSON-encoded under their keys, like SetMeta.
	Meta map[string]any
	// Settled marks records as in line with their users' directory values
	// (Brief.Settled), by anchor: records put in this commit, or records
	// already stored (left as they are). Every record put without one
	// loses its mark. Anchors without a record are skipped.
	Settled map[string]Settled
}

// kv is a key and its value, encoded.
type kv struct{ k, v []byte }

// change is one anchor's part of a commit: its record and brief put,
// both deleted, or (neither set nor del) the settled mark of a stored
// record.
type change struct {
	anchor []byte
	record []byte // encoded; nil: not put
	brief  []byte // encoded, with its mark
	del    bool
	mark   Settled
}

// dirtyBudget is how many pages (bbolt nodes) one write transaction may
// change before it commits. A commit copies every page it changed out of
// the memory map, and the kernel maps 64 KiB around each page a fault
// brings in, so a commit that changes N pages spread over a large file
// holds up to N × 64 KiB of it resident. Anchors are random (Active
// Directory's objectGUIDs), so each user's record and brief land on pages
// of their own: a 500-user commit kept 51 MiB of a 100,000-user file
// resident, against 9 MiB of a 10,000-user one. With this budget the
// bound is about 4 MiB whatever the file's size, for about one commit
// per 30 users there; users whose anchors share pages (a small file,
// sequential anchors) go more to a commit.
const dirtyBudget = 64

// overBudget reports whether the write transaction tx has changed as
// many pages as one commit should.
func overBudget(tx *bolt.Tx) bool {
	st := tx.Stats()
	return st.GetNodeCount() >= dirtyBudget
}

// Commit applies c in anchor order, in as many write transactions as
// dirtyBudget asks for, with the meta values in the last. Everything is
// validated and encoded first: a commit refused for its content writes
// nothing. A write that fails part way (a full disk) leaves the records
// before it written, each whole, and no meta value; the error says how
// many. Later puts of the same anchor win; an empty anchor, or an anchor
// both put and deleted, is refused; deleting an absent anchor is not an
// error.
func (s *Store) Commit(c Commit) error {
	if len(c.Puts) == 0 && len(c.Deletes) == 0 && len(c.Meta) == 0 && len(c.Settled) == 0 {
		return nil
	}
	// Validate and encode first: the write lock is then held only for the
	// bbolt work.
	changes := make([]change, 0, len(c.Puts)+len(c.Deletes)+len(c.Settled))
	putAnchors := make(map[string]struct{}, len(c.Puts))
	for i, r := range c.Puts {
		if r.Anchor == "" {
			return fmt.Errorf("state: update %s: record %d (DN %q) has an empty anchor; nothing written", s.path, i, r.DN)
		}
		raw, err := encodeRecord(r)
		if err != nil {
			return fmt.Errorf("state: update %s: encode record of anchor %s: %w; nothing written", s.path, anchorText(r.Anchor), err)
		}
		b := briefOf(r)
		if st, ok := c.Settled[r.Anchor]; ok {
			b.Settled = &st
		}
		changes = append(changes, change{anchor: []byte(r.Anchor), record: raw, brief: encodeBrief(b)})
		putAnchors[r.Anchor] = struct{}{}
	}
	for i, a := range c.Deletes {
		if a == "" {
			return fmt.Errorf("state: update %s: delete %d has an empty anchor; nothing written", s.path, i)
		}
		if _, ok := putAnchors[a]; ok {
			return fmt.Errorf("state: update %s: anchor %s is both put and deleted; nothing written", s.path, anchorText(a))
		}
		changes = append(changes, change{anchor: []byte(a), del: true})
	}
	for a, st := range c.Settled {
		if _, ok := putAnchors[a]; !ok {
			changes = append(changes, change{anchor: []byte(a), mark: st})
		}
	}
	meta := make([]kv, 0, len(c.Meta))
	for k, v := range c.Meta {
		if k == "" {
			return fmt.Errorf("state: update %s: empty meta key; nothing written", s.path)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("state: update %s: encode meta %q: %w; nothing written", s.path, k, err)
		}
		meta = append(meta, kv{[]byte(k), raw})
	}
	// In anchor order: the changes that share pages go in one
	// transaction, and bbolt splits fewer pages. The sort is stable, so
	// the later of two puts of one anchor is written last and wins.
	slices.SortStableFunc(changes, func(x, y change) int { return bytes.Compare(x.anchor, y.anchor) })

	recordsChange := len(c.Puts) > 0 || len(c.Deletes) > 0
	written, err := s.writeInParts(len(changes), func(tx *bolt.Tx, first bool) (func(i int) error, error) {
		b, err := tx.CreateBucketIfNotExists([]byte(bucketUsers))
		if err != nil {
			return nil, err
		}
		bb, err := tx.CreateBucketIfNotExists([]byte(bucketBriefs))
		if err != nil {
			return nil, err
		}
		if first && recordsChange {
			// Before any record lands: a commit that fails part way
			// still leaves the backup out of date (Backup).
			if err := bumpGeneration(tx); err != nil {
				return nil, err
			}
		}
		return func(i int) error { return applyChange(b, bb, changes[i]) }, nil
	}, func(tx *bolt.Tx) error { return putMeta(tx, meta) })
	switch {
	case err != nil && written == 0:
		return fmt.Errorf("state: update %s: %w; nothing written", s.path, err)
	case err != nil:
		return fmt.Errorf("state: update %s: %w; %d of %d changes written before it, each whole, and no meta value", s.path, err, written, len(changes))
	}
	return nil
}

// writeInParts makes n changes in order, in as many write transactions
// as dirtyBudget asks for (at least one change each). open prepares a
// transaction (first: the first one) and returns the function that makes
// change i in it; last, when set, runs in the transaction that makes the
// final change (or in the only one, when n is 0). It returns how many
// changes were committed.
func (s *Store) writeInParts(n int, open func(tx *bolt.Tx, first bool) (func(i int) error, error), last func(tx *bolt.Tx) error) (int, error) {
	written := 0
	for first := true; first || written < n; first = false {
		next := written
		err := s.db.Update(func(tx *bolt.Tx) error {
			change, err := open(tx, first)
			if err != nil {
				return err
			}
			for ; next < n && (next == written || !overBudget(tx)); next++ {
				if err := change(next); err != nil {
					return err
				}
			}
			if next < n || last == nil {
				return nil
			}
			return last(tx)
		})
		if err != nil {
			return written, err
		}
		// What the commit mapped goes before the next maps more.
		s.committed()
		written = next
	}
	return written, nil
}

// applyChange makes one change to the records (b) and briefs (bb).
func applyChange(b, bb *bolt.Bucket, c change) error {
	switch {
	case c.del:
		if err := b.Delete(c.anchor); err != nil {
			return fmt.Errorf("delete anchor %s: %w", anchorText(c.anchor), err)
		}
		if err := bb.Delete(c.anchor); err != nil {
			return fmt.Errorf("delete brief of anchor %s: %w", anchorText(c.anchor), err)
		}
	case c.record != nil:
		if err := b.Put(c.anchor, c.record); err != nil {
			return fmt.Errorf("put anchor %s: %w", anchorText(c.anchor), err)
		}
		if err := bb.Put(c.anchor, c.brief); err != nil {
			return fmt.Errorf("put brief of anchor %s: %w", anchorText(c.anchor), err)
		}
	default:
		raw := bb.Get(c.anchor)
		if raw == nil {
			return nil // no record (any more)
		}
		br, err := decodeBrief(c.anchor, raw)
		if err != nil {
			return err
		}
		br.Settled = &c.mark
		if err := bb.Put(c.anchor, encodeBrief(br)); err != nil {
			return fmt.Errorf("put brief of anchor %s: %w", anchorText(c.anchor), err)
		}
	}
	return nil
}

// putMeta writes encoded meta values.
func putMeta(tx *bolt.Tx, meta []kv) error {
	if len(meta) == 0 {
		return nil
	}
	mb, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
	if err != nil {
		return err
	}
	for _, e := range meta {
		if err := mb.Put(e.k, e.v); err != nil {
			return fmt.Errorf("put meta %q: %w", e.k, err)
		}
	}
	return nil
}
