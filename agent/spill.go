package agent

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// spill keeps a pass's users in the order they are put, so that a plan
// over a large directory does not hold them all in memory: up to
// spillAfter users stay in memory (tests, --user, small directories),
// beyond that every user is encoded (codec below) into a temporary file
// that no one else can open (unlinked at once on unix, removed on close
// elsewhere). Users are numbered in the order put.
type spill struct {
	a     *Agent
	after int
	mem   []*UserPlan // until more than after users were put
	f     *os.File
	w     *bufio.Writer
	n     int     // users on file
	marks []int64 // on file: where user i*markEvery starts
	size  int64
	buf   []byte
	// runs are [start, end) ranges of users, each sorted by report order.
	runs [][2]int
	// unlinked: the file was removed when made (unix).
	unlinked bool
}

// spillAfter is how many users a spill holds in memory before it moves
// them to a file: a chunk, so small plans never touch the disk.
const spillAfter = cloudChunk

// markEvery: the file notes where every markEvery-th user starts, and a
// read of user i skips from the mark before it. An offset per user would
// be 8 bytes a user, held until the pass ends; the rare reads of one
// user (users that may clash) skip at most markEvery-1 others.
const markEvery = 64

func (a *Agent) newSpill() *spill { return &spill{a: a, after: a.spillAfter} }

func (s *spill) len() int {
	if s.f != nil {
		return s.n
	}
	return len(s.mem)
}

// onFile reports whether the users are in the file (none in memory).
func (s *spill) onFile() bool { return s.f != nil }

// put adds up as user number len().
func (s *spill) put(up *UserPlan) error {
	if s.f == nil {
		s.mem = append(s.mem, up)
		if len(s.mem) <= s.after {
			return nil
		}
		if err := s.open(); err != nil {
			return err
		}
		held := s.mem
		s.mem = nil
		for _, u := range held {
			if err := s.write(u); err != nil {
				return err
			}
		}
		return nil
	}
	return s.write(up)
}

func (s *spill) open() error {
	f, unlinked, err := planTemp(s.a.spillDir, ".certsync-plan-*")
	if err != nil {
		return fmt.Errorf("agent: a temporary file for a plan of more than %d users: %w", s.after, err)
	}
	s.f, s.w, s.unlinked = f, bufio.NewWriterSize(f, 256<<10), unlinked
	return nil
}

// planTemp makes a temporary file for a plan in dir, else in the
// system's temporary directory (dir may be read-only to whoever runs a
// dry run). No one else needs to see it: on unix it is unlinked at once
// and goes away with the process, whatever happens.
func planTemp(dir, pattern string) (f *os.File, unlinked bool, err error) {
	f, err = os.CreateTemp(dir, pattern)
	if err != nil && dir != "" {
		f, err = os.CreateTemp("", pattern)
	}
	if err != nil {
		return nil, false, err
	}
	if runtime.GOOS != "windows" && os.Remove(f.Name()) == nil {
		unlinked = true
	}
	return f, unlinked, nil
}

func (s *spill) write(up *UserPlan) error {
	var err error
	s.buf, err = encodeUser(s.buf[:0], up)
	if err != nil {
		return fmt.Errorf("agent: keeping user %s of the plan: %w", up.Name, err)
	}
	var n [binary.MaxVarintLen64]byte
	hdr := binary.PutUvarint(n[:], uint64(len(s.buf)))
	if s.n%markEvery == 0 {
		s.marks = append(s.marks, s.size)
	}
	s.n++
	if _, err := s.w.Write(n[:hdr]); err != nil {
		return fmt.Errorf("agent: writing the plan to %s: %w", s.f.Name(), err)
	}
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("agent: writing the plan to %s: %w", s.f.Name(), err)
	}
	s.size += int64(hdr + len(s.buf))
	return nil
}

// flush makes what was put readable.
func (s *spill) flush() error {
	if s.w == nil {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("agent: writing the plan to %s: %w", s.f.Name(), err)
	}
	return nil
}

// get reads user i back.
func (s *spill) get(i int) (*UserPlan, error) {
	if s.f == nil {
		return s.mem[i], nil
	}
	if i < 0 || i >= s.n {
		return nil, fmt.Errorf("agent: user %d is not in the plan (%d users)", i, s.n)
	}
	for up, err := range s.scanBuffered(i, i+1, 4<<10) {
		return up, err
	}
	return nil, fmt.Errorf("agent: user %d could not be read back", i)
}

// readerAt returns a reader of the file from where user i starts.
func (s *spill) readerAt(i, buf int) (*bufio.Reader, error) {
	at := s.marks[i/markEvery]
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, at, s.size-at), buf)
	for range i % markEvery {
		n, err := binary.ReadUvarint(r)
		if err == nil {
			_, err = r.Discard(int(n))
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// scan reads users [from, to) in order; flush first. The error stops it.
func (s *spill) scan(from, to int) iter.Seq2[*UserPlan, error] {
	return s.scanBuffered(from, to, 64<<10)
}

// scanBuffered is scan reading buf bytes at a time.
func (s *spill) scanBuffered(from, to, buf int) iter.Seq2[*UserPlan, error] {
	return func(yield func(*UserPlan, error) bool) {
		if s.f == nil {
			for _, u := range s.mem[from:to] {
				if !yield(u, nil) {
					return
				}
			}
			return
		}
		if from >= to {
			return
		}
		r, err := s.readerAt(from, buf)
		if err != nil {
			yield(nil, fmt.Errorf("agent: reading the plan back from %s: %w", s.f.Name(), err))
			return
		}
		var b []byte
		for range to - from {
			n, err := binary.ReadUvarint(r)
			if err == nil {
				b = slices.Grow(b[:0], int(n))[:n]
				_, err = io.ReadFull(r, b)
			}
			var up *UserPlan
			if err == nil {
				up, err = s.a.decodeUser(b)
			}
			if err != nil {
				yield(nil, fmt.Errorf("agent: reading the plan back from %s: %w", s.f.Name(), err))
				return
			}
			if !yield(up, nil) {
				return
			}
		}
	}
}

// putRun puts users sorted in report order as one run.
func (s *spill) putRun(users []*UserPlan) error {
	slices.SortFunc(users, reportOrder)
	start := s.len()
	for _, u := range users {
		if err := s.put(u); err != nil {
			return err
		}
	}
	if len(users) > 0 {
		s.runs = append(s.runs, [2]int{start, s.len()})
	}
	return nil
}

// reportOrder sorts users by Name, then Source, then Anchor.
func reportOrder(x, y *UserPlan) int {
	return cmp.Or(strings.Compare(x.Name, y.Name), strings.Compare(x.Source, y.Source), strings.Compare(x.Anchor, y.Anchor))
}

// merged yields every user of the runs in report order, each with its
// number (a k-way merge: one user per run in memory). A failure to read
// the file back stops it and is set in *errp.
func (s *spill) merged(errp *error) iter.Seq2[int, *UserPlan] {
	return func(yield func(int, *UserPlan) bool) {
		h := &mergeHeap[*runCursor]{less: func(x, y *runCursor) bool {
			if x.err != nil || y.err != nil {
				return x.err != nil
			}
			return reportOrder(x.up, y.up) < 0
		}}
		var stops []func()
		defer func() {
			for _, stop := range stops {
				stop()
			}
		}()
		for _, r := range s.runs {
			// A small buffer per run: a plan of a million users has a
			// thousand runs.
			next, stop := iter.Pull2(s.scanBuffered(r[0], r[1], 8<<10))
			stops = append(stops, stop)
			c := &runCursor{next: next, i: r[0], end: r[1]}
			if c.advance(s) {
				heap.Push(h, c)
			}
		}
		for h.Len() > 0 {
			c := h.items[0]
			if c.err != nil {
				*errp = c.err
				return
			}
			if !yield(c.i, c.up) {
				return
			}
			c.i++
			if c.advance(s) {
				heap.Fix(h, 0)
			} else {
				heap.Pop(h)
			}
		}
	}
}

// runCursor is one run's place in a merge.
type runCursor struct {
	next   func() (*UserPlan, error, bool)
	i, end int
	up     *UserPlan
	err    error
}

func (c *runCursor) advance(s *spill) bool {
	if c.i >= c.end {
		return false
	}
	up, err, ok := c.next()
	if !ok {
		return false
	}
	c.up, c.err = up, err
	return true
}

// mergeHeap is container/heap's interface over the cursors of a k-way
// merge of sorted runs (the plan's users, the index's entries).
type mergeHeap[T any] struct {
	items []T
	less  func(x, y T) bool
}

func (h *mergeHeap[T]) Len() int           { return len(h.items) }
func (h *mergeHeap[T]) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *mergeHeap[T]) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *mergeHeap[T]) Push(x any)         { h.items = append(h.items, x.(T)) }
func (h *mergeHeap[T]) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

// close gives the file back.
func (s *spill) close() error {
	if s == nil || s.f == nil {
		return nil
	}
	err := s.f.Close()
	if !s.unlinked {
		err = errors.Join(err, os.Remove(s.f.Name()))
	}
	s.f, s.w, s.marks, s.runs = nil, nil, nil, nil
	return err
}

// The codec: a plan's user as compact bytes. Strings and lists keep the
// difference between nil and empty (state records are compared deeply);
// times keep their instant and offset, not their monotonic reading.
// TestSpillCodecCoversTypes fails when a type gains a field this codec
// does not write.

type encoder struct{ b []byte }

func (e *encoder) n(v int)      { e.b = binary.AppendVarint(e.b, int64(v)) }
func (e *encoder) str(s string) { e.n(len(s)); e.b = append(e.b, s...) }
func (e *encoder) flag(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// count writes a length, -1 for nil.
func (e *encoder) count(n int, isNil bool) {
	if isNil {
		n = -1
	}
	e.n(n)
}

func (e *encoder) strs(ss []string) {
	e.count(len(ss), ss == nil)
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) time(t time.Time) error {
	if t == (time.Time{}) {
		e.n(0)
		return nil
	}
	b, err := t.MarshalBinary()
	if err != nil {
		return err
	}
	e.n(len(b))
	e.b = append(e.b, b...)
	return nil
}

func encodeUser(b []byte, u *UserPlan) ([]byte, error) {
	e := &encoder{b: b}
	var terr error
	tm := func(t time.Time) {
		if err := e.time(t); err != nil && terr == nil {
			terr = err
		}
	}
	e.str(u.Anchor)
	e.str(u.Source)
	e.str(u.DN)
	e.str(u.Name)
	e.flag(u.Departed)
	e.flag(u.OutOfScope)
	e.count(len(u.Accepted), u.Accepted == nil)
	for _, c := range u.Accepted {
		e.str(c.Subject)
		e.str(c.Serial)
		e.str(c.SHA256)
		tm(c.NotBefore)
		tm(c.NotAfter)
		e.strs(c.Attributes)
		e.strs(c.Warnings)
		e.str(c.SID)
	}
	e.count(len(u.Rejected), u.Rejected == nil)
	for _, r := range u.Rejected {
		e.str(r.Attribute)
		e.str(r.Subject)
		e.str(r.Serial)
		e.str(r.SHA256)
		e.str(r.Code)
		e.str(r.Reason)
		tm(r.NotBefore)
	}
	e.count(len(u.Withheld), u.Withheld == nil)
	for _, w := range u.Withheld {
		e.str(w.Attribute)
		e.str(w.SHA256)
		e.str(w.Reason)
	}
	e.count(len(u.Values), u.Values == nil)
	for _, v := range u.Values {
		e.str(v.Attribute)
		e.str(v.SHA256)
		e.flag(v.PKCS7)
		e.strs(v.Certificates)
	}
	e.count(len(u.Targets), u.Targets == nil)
	for _, t := range u.Targets {
		e.str(t.Target)
		e.str(t.CloudID)
		e.str(t.CloudName)
		e.strs(t.Desired)
		c := t.Change
		for _, l := range [][]string{c.Add, c.Remove, c.Final, c.Owned, c.Unowned, c.Dropped} {
			e.strs(l)
		}
		e.str(t.Problem)
		e.flag(t.Unmatched)
		e.flag(t.Skipped)
		e.flag(t.Applied)
		// Only the text of a write's error is kept: the report shows it;
		// what depends on its kind is decided before it is spilled.
		e.flag(t.Err != nil)
		if t.Err != nil {
			e.str(t.Err.Error())
		}
		e.strs(t.Adopted)
		e.str(t.Warning)
		e.count(len(t.Certificates), t.Certificates == nil)
		for _, v := range t.Certificates {
			e.str(v.Subject)
			e.str(v.Serial)
			e.str(v.SHA256)
			e.str(v.Verdict)
			e.str(v.Reason)
			e.flag(v.PolicyRejected)
		}
		e.n(t.target)
		e.n(t.limit)
		e.flag(t.adopt)
		e.flag(t.retry)
		e.flag(t.gone)
	}
	e.str(u.Problem)
	r := u.record
	e.str(r.Anchor)
	e.str(r.Source)
	e.str(r.DN)
	e.str(r.Name)
	e.count(len(r.Targets), r.Targets == nil)
	for _, k := range slices.Sorted(maps.Keys(r.Targets)) {
		tr := r.Targets[k]
		e.str(k)
		e.str(tr.CloudID)
		e.strs(tr.Values)
		e.strs(tr.Pending)
		e.strs(tr.Kept)
		tm(tr.GoneSince)
	}
	e.str(r.Problem)
	tm(r.ProblemAt)
	tm(r.UpdatedAt)
	e.flag(u.hasRecord)
	e.count(len(u.reclaim), u.reclaim == nil)
	for _, l := range u.reclaim {
		e.strs(l)
	}
	e.n(u.accepted)
	e.n(u.expiring)
	e.strs(u.matchKeys)
	e.flag(u.lookup)
	e.flag(u.mark != nil)
	if m := u.mark; m != nil {
		e.b = append(e.b, m.Inputs[:]...)
		tm(m.Until)
		e.count(len(m.NotAfter), m.NotAfter == nil)
		for _, t := range m.NotAfter {
			tm(t)
		}
	}
	return e.b, terr
}

type decoder struct {
	b   []byte
	err error
}

var errSpillCorrupt = errors.New("the plan's temporary file is damaged")

func (d *decoder) n() int {
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[k:]
	return int(v)
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errSpillCorrupt
	}
	d.b = nil
}

func (d *decoder) str() string {
	n := d.n()
	if n < 0 || n > len(d.b) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) flag() bool {
	if len(d.b) == 0 {
		d.fail()
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

// count reads a length: -1 (nil) or the number of items, which each
// take at least a byte.
func (d *decoder) count() int {
	n := d.n()
	if n < -1 || n > len(d.b) {
		d.fail()
		return -1
	}
	return n
}

func list[T any](d *decoder, item func() T) []T {
	n := d.count()
	if n < 0 {
		return nil
	}
	out := make([]T, n)
	for i := range out {
		out[i] = item()
	}
	return out
}

func (d *decoder) strs() []string { return list(d, d.str) }

func (d *decoder) time() time.Time {
	n := d.n()
	if n == 0 {
		return time.Time{}
	}
	if n < 0 || n > len(d.b) {
		d.fail()
		return time.Time{}
	}
	var t time.Time
	if err := t.UnmarshalBinary(d.b[:n]); err != nil {
		d.fail()
	}
	d.b = d.b[n:]
	return t
}

func (a *Agent) decodeUser(b []byte) (*UserPlan, error) {
	d := &decoder{b: b}
	u := &UserPlan{Anchor: d.str(), Source: d.str(), DN: d.str(), Name: d.str(), Departed: d.flag(), OutOfScope: d.flag()}
	u.Accepted = list(d, func() CertInfo {
		return CertInfo{Subject: d.str(), Serial: d.str(), SHA256: d.str(), NotBefore: d.time(), NotAfter: d.time(), Attributes: d.strs(), Warnings: d.strs(), SID: d.str()}
	})
	u.Rejected = list(d, func() mapping.Rejection {
		return mapping.Rejection{Attribute: d.str(), Subject: d.str(), Serial: d.str(), SHA256: d.str(), Code: d.str(), Reason: d.str(), NotBefore: d.time()}
	})
	u.Withheld = list(d, func() mapping.Withheld {
		return mapping.Withheld{Attribute: d.str(), SHA256: d.str(), Reason: d.str()}
	})
	u.Values = list(d, func() ValueInfo {
		return ValueInfo{Attribute: d.str(), SHA256: d.str(), PKCS7: d.flag(), Certificates: d.strs()}
	})
	u.Targets = list(d, func() *TargetPlan {
		t := &TargetPlan{Target: d.str(), CloudID: d.str(), CloudName: d.str(), Desired: d.strs()}
		t.Change = mapping.TargetChange{Add: d.strs(), Remove: d.strs(), Final: d.strs(), Owned: d.strs(), Unowned: d.strs(), Dropped: d.strs()}
		t.Problem, t.Unmatched, t.Skipped, t.Applied = d.str(), d.flag(), d.flag(), d.flag()
		if d.flag() {
			t.Err = errors.New(d.str())
		}
		t.Adopted, t.Warning = d.strs(), d.str()
		t.Certificates = list(d, func() CertVerdict {
			return CertVerdict{Subject: d.str(), Serial: d.str(), SHA256: d.str(), Verdict: d.str(), Reason: d.str(), PolicyRejected: d.flag()}
		})
		t.target, t.limit, t.adopt, t.retry, t.gone = d.n(), d.n(), d.flag(), d.flag(), d.flag()
		return t
	})
	u.Problem = d.str()
	r := state.Record{Anchor: d.str(), Source: d.str(), DN: d.str(), Name: d.str()}
	if n := d.count(); n >= 0 {
		r.Targets = make(map[string]state.TargetRecord, n)
		for range n {
			k := d.str()
			r.Targets[k] = state.TargetRecord{CloudID: d.str(), Values: d.strs(), Pending: d.strs(), Kept: d.strs(), GoneSince: d.time()}
		}
	}
	r.Problem, r.ProblemAt, r.UpdatedAt = d.str(), d.time(), d.time()
	u.record, u.hasRecord = r, d.flag()
	u.reclaim = list(d, d.strs)
	u.accepted, u.expiring, u.matchKeys, u.lookup = d.n(), d.n(), d.strs(), d.flag()
	if d.flag() {
		m := &state.Settled{}
		if len(d.b) < len(m.Inputs) {
			d.fail()
		} else {
			d.b = d.b[copy(m.Inputs[:], d.b):]
		}
		m.Until, m.NotAfter = d.time(), list(d, d.time)
		u.mark = m
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return nil, d.err
	}
	for _, t := range u.Targets {
		if t.target < 0 || t.target >= len(a.targets) {
			return nil, errSpillCorrupt
		}
		t.show = a.describer(t.target, t.Target)
	}
	return u, nil
}
