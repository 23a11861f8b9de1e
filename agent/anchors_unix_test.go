//go:build unix

package agent

import (
	"runtime"
	"strconv"
	"testing"
)

// The anchors of a large read live outside the Go heap (anchors_unix.go),
// so they do not raise the collector's goal, and free gives them back.
func TestAnchorTableIsOffTheHeap(t *testing.T) {
	var before, after runtime.MemStats
	s := newAnchorSet()
	s.add("warm-up", "corp") // the first table and the source list
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 500_000 // 1,048,576 slots: 10.5 MB of table
	for i := range n {
		s.add(strconv.Itoa(i), "corp")
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Errorf("the Go heap grew by %d bytes for %d anchors; want the table outside it", grew, n)
	}
	if !s.has("4711") || s.has("-1") {
		t.Fatal("the set lost an anchor or found one never added")
	}
	s.free()
	if s.has("4711") || s.n != 0 {
		t.Error("anchors found after free")
	}
	s.add("again", "lab")
	if src, ok := s.source("again"); !ok || src != "lab" {
		t.Errorf("after free: source = %q, %v; want lab", src, ok)
	}
	s.free()
}
