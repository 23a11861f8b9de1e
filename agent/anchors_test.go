package agent

import "testing"

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
