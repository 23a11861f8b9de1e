//go:build !unix

package agent

// anchorTable is the memory of an anchorSet's table (anchors_unix.go
// maps it outside the Go heap; here it is on the heap).
type anchorTable struct {
	slots []uint64
	dirs  []uint16
}

func newAnchorTable(size int) *anchorTable {
	return &anchorTable{slots: make([]uint64, size), dirs: make([]uint16, size)}
}

func (t *anchorTable) free() {}
