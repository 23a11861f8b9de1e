package agent

import "crypto/sha256"

// anchorSet is the set of anchors a pass read, each with the directory it
// came from. A full pass over a large directory holds every one until
// departed users are found, so it keeps a 128-bit digest of the anchor
// and the directory's number (18 bytes a user) instead of the anchor's
// text (about 90). Two anchors with one digest would make a departed
// user look present, or two users one: at 2^-128 a pair, never in
// practice.
type anchorSet struct {
	sources []string
	ids     map[[16]byte]uint16
}

func newAnchorSet() *anchorSet { return &anchorSet{ids: map[[16]byte]uint16{}} }

func anchorDigest(anchor string) [16]byte {
	sum := sha256.Sum256([]byte(anchor))
	return [16]byte(sum[:16])
}

// add notes anchor as read from source.
func (s *anchorSet) add(anchor, source string) {
	i := 0
	for i < len(s.sources) && s.sources[i] != source {
		i++
	}
	if i == len(s.sources) {
		s.sources = append(s.sources, source)
	}
	s.ids[anchorDigest(anchor)] = uint16(i)
}

// source is the directory anchor was read from; false when it was not.
func (s *anchorSet) source(anchor string) (string, bool) {
	i, ok := s.ids[anchorDigest(anchor)]
	if !ok {
		return "", false
	}
	return s.sources[i], true
}

// has reports whether anchor was read.
func (s *anchorSet) has(anchor string) bool {
	_, ok := s.ids[anchorDigest(anchor)]
	return ok
}
