package agent

import "hash/maphash"

// anchorSet is the set of anchors a pass read, each with the directory it
// came from. A full pass over a large directory holds every one until
// departed users are found, so it keeps 64 bits of a hash of each anchor,
// keyed afresh for every pass, and the directory's number, in a table
// open-addressed up to 7/8 full: at most 10 bytes a slot (13 a user at
// 100,000 users, where a map of 128-bit digests took 26 and the anchors'
// text about 90).
//
// Two anchors with one hash would make the second read look like a copy
// of the first (left alone this pass) or a departed user look present
// (withdrawn a pass later): both only delay, at about n²/2⁶⁵ a pass
// (3·10⁻¹⁰ at 100,000 users), and the key changes every pass, so never
// the same pair twice.
type anchorSet struct {
	seed    maphash.Seed
	sources []string
	table   *anchorTable // nil until the first add
	slots   []uint64     // table's hashes; 0 is an empty slot
	dirs    []uint16     // table's directory of slots[i], an index into sources
	n       int          // slots in use
}

func newAnchorSet() *anchorSet { return &anchorSet{seed: maphash.MakeSeed()} }

func (s *anchorSet) hash(anchor string) uint64 {
	if h := maphash.String(s.seed, anchor); h != 0 {
		return h
	}
	return 1
}

// slot is where h is, or the empty slot where it would go.
func (s *anchorSet) slot(h uint64) int {
	mask := uint64(len(s.slots) - 1)
	i := h & mask
	for s.slots[i] != 0 && s.slots[i] != h {
		i = (i + 1) & mask
	}
	return int(i)
}

// add notes anchor as read from source.
func (s *anchorSet) add(anchor, source string) {
	si := 0
	for si < len(s.sources) && s.sources[si] != source {
		si++
	}
	if si == len(s.sources) {
		s.sources = append(s.sources, source)
	}
	if (s.n+1)*8 > len(s.slots)*7 {
		s.grow()
	}
	h := s.hash(anchor)
	i := s.slot(h)
	if s.slots[i] == 0 {
		s.n++
	}
	s.slots[i], s.dirs[i] = h, uint16(si)
}

func (s *anchorSet) grow() {
	old := s.table
	slots, sources := s.slots, s.dirs
	s.table = newAnchorTable(max(2*len(slots), 1024))
	s.slots, s.dirs = s.table.slots, s.table.dirs
	for i, h := range slots {
		if h != 0 {
			j := s.slot(h)
			s.slots[j], s.dirs[j] = h, sources[i]
		}
	}
	old.free()
}

// free gives the table's memory back; the set is empty after.
func (s *anchorSet) free() {
	s.table.free()
	s.table, s.slots, s.dirs, s.n = nil, nil, nil, 0
}

// source is the directory anchor was read from; false when it was not.
func (s *anchorSet) source(anchor string) (string, bool) {
	if s.n == 0 {
		return "", false
	}
	i := s.slot(s.hash(anchor))
	if s.slots[i] == 0 {
		return "", false
	}
	return s.sources[s.dirs[i]], true
}

// has reports whether anchor was read.
func (s *anchorSet) has(anchor string) bool {
	_, ok := s.source(anchor)
	return ok
}
