package mapping

import (
	"reflect"
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	l := func(vs ...string) []string { return vs }
	tests := []struct {
		name                        string
		desired, published, current []string
		limit                       int
		want                        TargetChange
		changed                     bool
	}{
		{
			name:    "empty state, empty target",
			desired: l("a", "b"), limit: 10,
			want:    TargetChange{Add: l("a", "b"), Final: l("a", "b"), Owned: l("a", "b")},
			changed: true,
		},
		{
			name:    "nothing wanted, nothing there",
			limit:   10,
			want:    TargetChange{},
			changed: false,
		},
		{
			name:    "no change",
			desired: l("a", "b"), published: l("a", "b"), current: l("b", "a"), limit: 10,
			want:    TargetChange{Final: l("b", "a"), Owned: l("b", "a")},
			changed: false,
		},
		{
			name:    "add a new certificate",
			desired: l("c", "a", "b"), published: l("a", "b"), current: l("a", "b"), limit: 10,
			want:    TargetChange{Add: l("c"), Final: l("a", "b", "c"), Owned: l("a", "b", "c")},
			changed: true,
		},
		{
			name:    "remove what certsync published and no longer wants",
			desired: l("a"), published: l("a", "b"), current: l("b", "a"), limit: 10,
			want:    TargetChange{Remove: l("b"), Final: l("a"), Owned: l("a")},
			changed: true,
		},
		{
			name:    "remove everything certsync published",
			desired: nil, published: l("a", "b"), current: l("a", "b"), limit: 10,
			want:    TargetChange{Remove: l("a", "b")},
			changed: true,
		},
		{
			name:    "unowned values are kept and reported",
			desired: l("a"), published: l("a", "old"), current: l("X509:<PN>admin", "old", "a"), limit: 10,
			want: TargetChange{
				Remove: l("old"), Final: l("X509:<PN>admin", "a"), Owned: l("a"), Unowned: l("X509:<PN>admin"),
			},
			changed: true,
		},
		{
			name:    "limit with unowned values taking places first",
			desired: l("a", "b", "c"), current: l("x", "y"), limit: 3,
			want: TargetChange{
				Add: l("a"), Final: l("x", "y", "a"), Owned: l("a"), Unowned: l("x", "y"), Dropped: l("b", "c"),
			},
			changed: true,
		},
		{
			name:    "limit already reached by unowned values",
			desired: l("a"), published: l("a"), current: l("x", "y"), limit: 2,
			want:    TargetChange{Final: l("x", "y"), Unowned: l("x", "y"), Dropped: l("a")},
			changed: false,
		},
		{
			name:    "limit counts kept owned values too",
			desired: l("a", "b", "c"), published: l("a"), current: l("a", "x"), limit: 3,
			want: TargetChange{
				Add: l("b"), Final: l("a", "x", "b"), Owned: l("a", "b"), Unowned: l("x"), Dropped: l("c"),
			},
			changed: true,
		},
		{
			name:    "removal frees places for additions",
			desired: l("new"), published: l("old"), current: l("old", "x"), limit: 2,
			want: TargetChange{
				Add: l("new"), Remove: l("old"), Final: l("x", "new"), Owned: l("new"), Unowned: l("x"),
			},
			changed: true,
		},
		{
			name:    "no limit",
			desired: l("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"), limit: 0,
			want: TargetChange{
				Add:   l("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"),
				Final: l("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"),
				Owned: l("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"),
			},
			changed: true,
		},
		{
			name:    "desired value already present but unowned stays unowned",
			desired: l("a", "b"), current: l("a"), limit: 10,
			want:    TargetChange{Add: l("b"), Final: l("a", "b"), Owned: l("b"), Unowned: l("a")},
			changed: true,
		},
		{
			name:    "published value gone from the cloud is added back",
			desired: l("a", "b"), published: l("a", "b"), current: l("a"), limit: 10,
			want:    TargetChange{Add: l("b"), Final: l("a", "b"), Owned: l("a", "b")},
			changed: true,
		},
		{
			name:    "published value gone and no longer wanted needs nothing",
			desired: l("a"), published: l("a", "z"), current: l("a"), limit: 10,
			want:    TargetChange{Final: l("a"), Owned: l("a")},
			changed: false,
		},
		{
			name:    "duplicates in the inputs are ignored",
			desired: l("a", "b", "a", "b"), published: l("a", "a"), current: l("a", "x", "a", "x"), limit: 10,
			want:    TargetChange{Add: l("b"), Final: l("a", "x", "b"), Owned: l("a", "b"), Unowned: l("x")},
			changed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.desired, tt.published, tt.current, tt.limit)
			// DeepEqual tells nil from empty: empty fields must be nil.
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff(%q, %q, %q, %d) =\n  %#v\nwant\n  %#v", tt.desired, tt.published, tt.current, tt.limit, got, tt.want)
			}
			if got.Changed() != tt.changed {
				t.Errorf("Changed() = %v, want %v", got.Changed(), tt.changed)
			}
			checkDiffInvariants(t, tt.desired, tt.published, tt.current, tt.limit, got)
		})
	}
}

// checkDiffInvariants holds for every Diff: the safety rules, whatever the
// input.
func checkDiffInvariants(t *testing.T, desired, published, current []string, limit int, ch TargetChange) {
	t.Helper()
	for _, v := range ch.Remove {
		if !slices.Contains(published, v) || slices.Contains(desired, v) || !slices.Contains(current, v) {
			t.Errorf("removes %q, which certsync did not publish, still wants or is not there", v)
		}
		if slices.Contains(ch.Final, v) {
			t.Errorf("removes %q but keeps it in Final", v)
		}
	}
	for _, v := range current {
		if !slices.Contains(published, v) && !slices.Contains(ch.Final, v) {
			t.Errorf("unowned %q left out of Final", v)
		}
	}
	for _, v := range ch.Owned {
		if !slices.Contains(ch.Final, v) {
			t.Errorf("owns %q, which is not in Final", v)
		}
		if slices.Contains(current, v) && !slices.Contains(published, v) {
			t.Errorf("claims %q, which someone else put there", v)
		}
	}
	if limit > 0 && len(ch.Add) > 0 && len(ch.Final) > limit {
		t.Errorf("adds beyond the limit: %d values, limit %d", len(ch.Final), limit)
	}
	if SameSet(ch.Final, current) == ch.Changed() {
		t.Errorf("Changed() = %v but Final %q vs current %q", ch.Changed(), ch.Final, current)
	}
}

func FuzzDiff(f *testing.F) {
	f.Add([]byte("ab"), []byte("bc"), []byte("cxa"), uint8(3))
	f.Add([]byte(""), []byte("a"), []byte("a"), uint8(0))
	f.Fuzz(func(t *testing.T, d, p, c []byte, limit uint8) {
		split := func(b []byte) []string {
			var vs []string
			for _, x := range b {
				vs = append(vs, string(rune('a'+x%8)))
			}
			return vs
		}
		desired, published, current := split(d), split(p), split(c)
		ch := Diff(desired, published, current, int(limit%6))
		checkDiffInvariants(t, desired, published, current, int(limit%6), ch)
	})
}

func TestSameSet(t *testing.T) {
	tests := []struct {
		a, b []string
		want bool
	}{
		{nil, nil, true},
		{nil, []string{}, true},
		{[]string{"a", "b"}, []string{"b", "a"}, true},
		{[]string{"a", "a", "b"}, []string{"b", "a"}, true},
		{[]string{"a"}, []string{"a", "b"}, false},
		{[]string{"a", "c"}, []string{"a", "b"}, false},
		{[]string{"A"}, []string{"a"}, false},
	}
	for _, tt := range tests {
		if got := SameSet(tt.a, tt.b); got != tt.want {
			t.Errorf("SameSet(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := SameSet(tt.b, tt.a); got != tt.want {
			t.Errorf("SameSet(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}
