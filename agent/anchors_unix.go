//go:build unix

package agent

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// anchorTable is the memory of an anchorSet's table: slots and dirs side
// by side in one anonymous mapping, outside the Go heap. The table holds
// no pointers, lives as long as the pass's read, and is the one thing a
// pass keeps per user: on the heap it would count twice towards the
// collector's goal (GOGC), and each outgrown table would stay resident
// until a collection freed it. Here it costs what it holds, and an
// outgrown table is unmapped at once.
type anchorTable struct {
	slots   []uint64
	dirs    []uint16
	mem     []byte // nil: on the heap
	cleanup runtime.Cleanup
}

func newAnchorTable(size int) *anchorTable {
	mem, err := unix.Mmap(-1, 0, size*(8+2), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		// Out of address space or mappings: the heap will do.
		return &anchorTable{slots: make([]uint64, size), dirs: make([]uint16, size)}
	}
	t := &anchorTable{
		slots: unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), size),
		dirs:  unsafe.Slice((*uint16)(unsafe.Pointer(&mem[size*8])), size),
		mem:   mem,
	}
	// A set dropped without free (a pass that failed part way) is
	// unmapped when the collector finds it unreachable.
	t.cleanup = runtime.AddCleanup(t, func(mem []byte) { _ = unix.Munmap(mem) }, mem)
	return t
}

// free unmaps the table; it must not be used after.
func (t *anchorTable) free() {
	if t == nil || t.mem == nil {
		return
	}
	t.cleanup.Stop()
	_ = unix.Munmap(t.mem)
	t.slots, t.dirs, t.mem = nil, nil, nil
}
