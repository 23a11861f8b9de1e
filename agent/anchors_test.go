package agent

import (
	"fmt"
	"testing"
)

func TestAnchorSet(t *testing.T) {
	s := newAnchorSet()
	s.add("guid-a", "corp")
	s.add("guid-b", "lab")
	s.add("GUID-A", "lab") // anchors are bytes: case matters
	tests := []struct {
		anchor, source string
		found          bool
	}{
		{"guid-a", "corp", true},
		{"guid-b", "lab", true},
		{"GUID-A", "lab", true},
		{"guid-c", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := s.source(tt.anchor)
		if got != tt.source || ok != tt.found || s.has(tt.anchor) != tt.found {
			t.Errorf("%q: source %q, %v, has %v; want %q, %v", tt.anchor, got, ok, s.has(tt.anchor), tt.source, tt.found)
		}
	}
	if len(s.sources) != 2 {
		t.Errorf("sources %q: each directory's name is kept once", s.sources)
	}
}

// TestAnchorSetGrows: anchors added past the table's growth points are
// all still there, each with its directory, and no others are.
func TestAnchorSetGrows(t *testing.T) {
	s := newAnchorSet()
	const n = 5000
	for i := range n {
		s.add(fmt.Sprintf("anchor-%d", i), []string{"corp", "lab", "dmz"}[i%3])
	}
	if s.n != n || len(s.slots) != 8192 {
		t.Fatalf("%d anchors in %d slots; want %d in 8192", s.n, len(s.slots), n)
	}
	for i := range n {
		if src, ok := s.source(fmt.Sprintf("anchor-%d", i)); !ok || src != []string{"corp", "lab", "dmz"}[i%3] {
			t.Fatalf("anchor-%d: %q, %v", i, src, ok)
		}
	}
	for i := n; i < 2*n; i++ {
		if s.has(fmt.Sprintf("anchor-%d", i)) {
			t.Fatalf("anchor-%d was never added", i)
		}
	}
}
