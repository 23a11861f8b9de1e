package agent

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"slices"
)

// planIndex is what a plan keeps of each candidate to find, once every
// user is spilled, the few that may clash: hashes of the accounts they
// resolved to and of the unique values they hold, with their places.
// Equal hashes are only suspects: the users are read back and compared.
//
// The entries are in lists: one per target (the account a user resolved
// to), then one per attribute (each value a user would hold in an
// attribute whose values sit on one account only). A large pass notes
// two or more entries a user, so beyond a run of them (ixRun) they go to
// a temporary file in sorted runs, merged once every user is noted
// (seal): the index then holds only the suspects, whatever the
// directory's size.
type planIndex struct {
	seed    maphash.Seed
	mask    uint32 // Agent.indexMask
	run     int    // entries held before a sorted run goes to the file
	dir     string // where the file goes (Agent.spillDir)
	targets int    // the first list of values comes after one per target

	held []ixEntry // noted, not yet in a run on the file
	f    *os.File
	w    *bufio.Writer
	runs []int // entries in each run on the file, in file order
	// unlinked: the file was removed when made (unix).
	unlinked bool
	// suspectsOf, once sealed: per list, the runs of entries sharing a
	// hash, more than one each.
	suspectsOf map[uint16][][]ixEntry

	// claims: attribute + "\x00" + account, for users that newly match an
	// account, which another state record may link (n: the target). Few
	// (users whose record does not link their account yet): held.
	claims []ixEntry
	// noClaims: the state is empty, no record links an account.
	noClaims bool
}

// ixEntry is one hash of one user: pos is its number in the plan's
// users, seq its place in the order read, n an item number, list its
// list. The hash is 32 bits: entries with equal hashes are read back and
// compared, so a collision costs two reads (about one pair in 100,000
// users), while every entry takes 16 bytes.
type ixEntry struct {
	h, pos, seq uint32
	n, list     uint16
}

const (
	// ixRun entries (512 KiB) are held before they go to the file.
	ixRun = 32 << 10
	// ixEntrySize is an entry's size on the file.
	ixEntrySize = 16
)

func (a *Agent) newPlanIndex() *planIndex {
	run := a.indexRun
	if run <= 0 {
		run = ixRun
	}
	return &planIndex{seed: maphash.MakeSeed(), mask: a.indexMask, run: run, dir: a.spillDir, targets: len(a.targets)}
}

// accountList and valueList number the lists: the accounts users
// resolved to in target ti, the values they would hold in attribute ai.
func (ix *planIndex) accountList(ti int) uint16 { return uint16(ti) }
func (ix *planIndex) valueList(ai int) uint16   { return uint16(ix.targets + ai) }

func (ix *planIndex) hash(s string) uint32 { return uint32(maphash.String(ix.seed, s)) & ix.mask }

// note indexes candidate up, number pos in the plan, seq-th read.
func (ix *planIndex) note(a *Agent, up *UserPlan, pos, seq int) error {
	for ti := range a.targets {
		id := up.accountIn(ti)
		if id == "" {
			continue
		}
		if err := ix.add(ixEntry{ix.hash(id), uint32(pos), uint32(seq), 0, ix.accountList(ti)}); err != nil {
			return err
		}
		if ix.noClaims || up.Departed || up.claims(ti, id) {
			continue
		}
		for _, t := range up.Targets {
			if t.target == ti {
				ix.claims = append(ix.claims, ixEntry{ix.hash(t.Target + "\x00" + id), uint32(pos), uint32(seq), uint16(ti), 0})
			}
		}
	}
	if up.Departed || up.Problem != "" {
		return nil
	}
	for ai, at := range a.attrs {
		if !at.unique {
			continue
		}
		for _, t := range up.Targets {
			if t.Target != at.name || t.Problem != "" {
				continue
			}
			for vi, v := range union(t.Change.Add, t.Change.Owned) {
				if err := ix.add(ixEntry{ix.hash(v), uint32(pos), uint32(seq), uint16(vi), ix.valueList(ai)}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (ix *planIndex) add(e ixEntry) error {
	ix.held = append(ix.held, e)
	if len(ix.held) < ix.run {
		return nil
	}
	return ix.putRun()
}

// ixOrder sorts entries by list, hash, then the order read.
func ixOrder(x, y ixEntry) int {
	return cmp.Or(cmp.Compare(x.list, y.list), cmp.Compare(x.h, y.h), cmp.Compare(x.seq, y.seq), cmp.Compare(x.n, y.n))
}

// putRun writes the held entries to the file as one sorted run.
func (ix *planIndex) putRun() error {
	if ix.f == nil {
		f, unlinked, err := planTemp(ix.dir, ".certsync-index-*")
		if err != nil {
			return fmt.Errorf("agent: a temporary file for the plan's index: %w", err)
		}
		ix.f, ix.w, ix.unlinked = f, bufio.NewWriterSize(f, 64<<10), unlinked
	}
	slices.SortFunc(ix.held, ixOrder)
	var b [ixEntrySize]byte
	for _, e := range ix.held {
		binary.LittleEndian.PutUint32(b[0:], e.h)
		binary.LittleEndian.PutUint32(b[4:], e.pos)
		binary.LittleEndian.PutUint32(b[8:], e.seq)
		binary.LittleEndian.PutUint16(b[12:], e.n)
		binary.LittleEndian.PutUint16(b[14:], e.list)
		if _, err := ix.w.Write(b[:]); err != nil {
			return fmt.Errorf("agent: writing the plan's index to %s: %w", ix.f.Name(), err)
		}
	}
	ix.runs = append(ix.runs, len(ix.held))
	ix.held = ix.held[:0]
	return nil
}

// seal finds the suspects once every user is noted.
func (ix *planIndex) seal() error {
	ix.suspectsOf = map[uint16][][]ixEntry{}
	var group []ixEntry
	end := func() {
		if len(group) > 1 {
			ix.suspectsOf[group[0].list] = append(ix.suspectsOf[group[0].list], group)
		}
		group = nil
	}
	take := func(e ixEntry) {
		if len(group) > 0 && (group[0].list != e.list || group[0].h != e.h) {
			end()
		}
		group = append(group, e)
	}
	if ix.f == nil {
		slices.SortFunc(ix.held, ixOrder)
		for _, e := range ix.held {
			take(e)
		}
	} else {
		if len(ix.held) > 0 {
			if err := ix.putRun(); err != nil {
				return err
			}
		}
		if err := ix.w.Flush(); err != nil {
			return fmt.Errorf("agent: writing the plan's index to %s: %w", ix.f.Name(), err)
		}
		if err := ix.merge(take); err != nil {
			return fmt.Errorf("agent: reading the plan's index back from %s: %w", ix.f.Name(), err)
		}
	}
	end()
	ix.held = nil
	for _, runs := range ix.suspectsOf {
		slices.SortFunc(runs, func(x, y []ixEntry) int { return cmp.Or(cmp.Compare(x[0].seq, y[0].seq), cmp.Compare(x[0].n, y[0].n)) })
	}
	return nil
}

// merge passes every entry on the file to take, in ixOrder.
func (ix *planIndex) merge(take func(ixEntry)) error {
	h := &mergeHeap[*ixCursor]{less: func(x, y *ixCursor) bool { return ixOrder(x.e, y.e) < 0 }}
	var at int64
	for _, n := range ix.runs {
		c := &ixCursor{r: bufio.NewReaderSize(io.NewSectionReader(ix.f, at*ixEntrySize, int64(n)*ixEntrySize), 16<<10), left: n}
		at += int64(n)
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			h.items = append(h.items, c)
		}
	}
	heap.Init(h)
	for h.Len() > 0 {
		c := h.items[0]
		take(c.e)
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return nil
}

// ixCursor reads one run.
type ixCursor struct {
	r    *bufio.Reader
	left int
	e    ixEntry
}

func (c *ixCursor) next() (bool, error) {
	if c.left == 0 {
		return false, nil
	}
	var b [ixEntrySize]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		return false, err
	}
	c.left--
	c.e = ixEntry{h: binary.LittleEndian.Uint32(b[0:]), pos: binary.LittleEndian.Uint32(b[4:]), seq: binary.LittleEndian.Uint32(b[8:]),
		n: binary.LittleEndian.Uint16(b[12:]), list: binary.LittleEndian.Uint16(b[14:])}
	return true, nil
}

// accountSuspects and valueSuspects yield the runs of entries of a list
// sharing a hash, more than one each, ordered by their first entry's
// place in the order read. The index must be sealed.
func (ix *planIndex) accountSuspects(ti int) [][]ixEntry { return ix.suspectsOf[ix.accountList(ti)] }
func (ix *planIndex) valueSuspects(ai int) [][]ixEntry   { return ix.suspectsOf[ix.valueList(ai)] }

// close gives the file back.
func (ix *planIndex) close() error {
	if ix.f == nil {
		return nil
	}
	err := ix.f.Close()
	if !ix.unlinked {
		err = errors.Join(err, os.Remove(ix.f.Name()))
	}
	ix.f, ix.w = nil, nil
	return err
}
