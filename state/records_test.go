package state

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	cet  = time.FixedZone("CET", 3600)
	when = time.Date(2026, 3, 1, 12, 30, 45, 123456789, cet)
)

func TestRecordRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		rec  Record
	}{
		{"anchor only", Record{Anchor: "3f2a6c1e-2b1d-4c6f-9e1a-0d7b8c9e0f11"}},
		{"person, two targets", Record{
			Anchor: "q83vEjRWeJCrze8SNFZ4kA==",
			Source: "contoso",
			DN:     "CN=Doe\\, Jane,OU=Staff,DC=example,DC=com",
			Name:   "jane.doe@example.com",
			Targets: map[string]TargetRecord{
				"graph.certificateUserIds": {
					CloudID: "0b4d5c2e-7d1f-4e8a-9c3b-2a1f0e9d8c7b",
					Values:  []string{"X509:<SKI>a1b2c3", "X509:<SHA1-PUKEY>d4e5f6"},
					Pending: []string{"X509:<SKI>0707"},
				},
				"exo.userSMimeCertificate": {CloudID: "jane.doe@example.com", Values: []string{"MIIB..."}, Kept: []string{"MIIC..."}},
			},
			Problem:   "cloud user not found",
			ProblemAt: when,
			UpdatedAt: when.Add(time.Minute),
		}},
		{"empty and nil slices read back alike", Record{
			Anchor: "a",
			Targets: map[string]TargetRecord{
				"graph.certificateUserIds": {CloudID: "c", Values: []string{}, Pending: nil},
				"exo":                      {}, // kept: stored as given
			},
		}},
		{"empty targets map", Record{Anchor: "b", Targets: map[string]TargetRecord{}}},
		{"unicode and quotes", Record{
			Anchor:  "ü\"'\\/\x01",
			DN:      `cn="Jürgen \"J\" Groß",o=Ä`,
			Name:    "jürgen@bücher.example",
			Problem: `ambiguous "problem": two cloud users`,
		}},
		{"local times", Record{Anchor: "c", ProblemAt: when.In(time.Local), UpdatedAt: time.Now()}},
	}
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, Options{})
	var puts []Record
	for _, c := range cases {
		puts = append(puts, c.rec)
	}
	if err := s.Update(puts, nil); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, s *Store) {
		for _, c := range cases {
			got, ok, err := s.Get(c.rec.Anchor)
			if err != nil || !ok {
				t.Errorf("%s: Get = %v, %v", c.name, ok, err)
				continue
			}
			assertRecord(t, got, c.rec)
		}
	}
	check(t, s)
	// And through the file, from a fresh read-only store.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(t, openTest(t, path, Options{ReadOnly: true}))
}

func TestGetMissing(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Update([]Record{{Anchor: "present"}}, nil); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get("absent")
	if err != nil || ok || !isZero(got) {
		t.Errorf("Get(absent) = %+v, %v, %v; want zero, false, nil", got, ok, err)
	}
	if _, _, err := s.Get(""); err == nil {
		t.Error(`Get("") succeeded`)
	}
}

func isZero(r Record) bool {
	return r.Anchor == "" && r.DN == "" && r.Name == "" && r.Targets == nil && r.Problem == "" &&
		r.ProblemAt.IsZero() && r.UpdatedAt.IsZero()
}

// A put replaces the whole record, and the last put of an anchor wins.
func TestUpdateReplaces(t *testing.T) {
	s, _ := newStore(t)
	first := Record{Anchor: "a", DN: "cn=a", Problem: "x", Targets: map[string]TargetRecord{"t": {Values: []string{"v"}}}}
	if err := s.Update([]Record{first}, nil); err != nil {
		t.Fatal(err)
	}
	second := Record{Anchor: "a", DN: "cn=a,ou=moved"}
	third := Record{Anchor: "a", DN: "cn=a,ou=moved-again", Name: "a@example.com"}
	if err := s.Update([]Record{second, third}, nil); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get("a")
	if err != nil {
		t.Fatal(err)
	}
	assertRecord(t, got, third)
}

func TestUpdateIsAtomic(t *testing.T) {
	before := []Record{
		{Anchor: "keep", DN: "cn=keep", Name: "before"},
		{Anchor: "keep2", DN: "cn=keep2"},
	}
	cases := []struct {
		name    string
		puts    []Record
		deletes []string
		want    string // in the error
	}{
		{"empty anchor among puts",
			[]Record{{Anchor: "new1"}, {Anchor: "keep", Name: "after"}, {DN: "cn=nobody"}},
			[]string{"keep2"}, `record 2 (DN "cn=nobody") has an empty anchor`},
		{"empty anchor among deletes",
			[]Record{{Anchor: "new1"}}, []string{"keep2", ""}, "delete 1 has an empty anchor"},
		{"anchor both put and deleted",
			[]Record{{Anchor: "new1"}, {Anchor: "keep", Name: "after"}}, []string{"keep"}, `anchor "keep" is both put and deleted`},
		// Passes validation, fails inside the bbolt transaction after
		// earlier puts and deletes: the rollback must undo them.
		{"key too large for bbolt",
			[]Record{{Anchor: "new1"}, {Anchor: "keep", Name: "after"}, {Anchor: strings.Repeat("x", 40000)}},
			[]string{"keep2"}, "(40000 bytes): key too large"},
		{"unencodable time",
			[]Record{{Anchor: "new1"}, {Anchor: "y10k", UpdatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
			nil, `anchor "y10k"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, path := newStore(t)
			if err := s.Update(before, nil); err != nil {
				t.Fatal(err)
			}
			err := s.Update(c.puts, c.deletes)
			if err == nil {
				t.Fatal("Update succeeded")
			}
			for _, w := range []string{c.want, path, "nothing written"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if n, err := s.Count(); err != nil || n != len(before) {
				t.Errorf("Count = %d, %v; want %d", n, err, len(before))
			}
			for _, want := range before {
				got, ok, err := s.Get(want.Anchor)
				if err != nil || !ok {
					t.Errorf("Get(%s) = %v, %v", want.Anchor, ok, err)
					continue
				}
				assertRecord(t, got, want)
			}
			if _, ok, _ := s.Get("new1"); ok {
				t.Error("new1 was written")
			}
		})
	}
}

func TestUpdateRefusesInvalidUTF8InOwnedValues(t *testing.T) {
	bad := "X509:<SKI>\xff\xfe"
	cases := []struct {
		name    string
		targets map[string]TargetRecord
	}{
		{"value", map[string]TargetRecord{"t": {Values: []string{"ok", bad}}}},
		{"pending", map[string]TargetRecord{"t": {Pending: []string{bad}}}},
		{"kept", map[string]TargetRecord{"t": {Kept: []string{bad}}}},
		{"cloud id", map[string]TargetRecord{"t": {CloudID: "\xc3"}}},
		{"target name", map[string]TargetRecord{"t\xc3": {}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := newStore(t)
			err := s.Update([]Record{{Anchor: "ok"}, {Anchor: "bad", Targets: c.targets}}, nil)
			if err == nil || !strings.Contains(err.Error(), "not valid UTF-8") || !strings.Contains(err.Error(), `anchor "bad"`) {
				t.Fatalf("err = %v, want one naming anchor \"bad\" and the invalid UTF-8", err)
			}
			if n, err := s.Count(); err != nil || n != 0 {
				t.Errorf("Count = %d, %v; want 0", n, err)
			}
		})
	}
}

// Text for people is stored with invalid bytes replaced; the record is kept.
func TestInvalidUTF8InTextIsReplaced(t *testing.T) {
	s, _ := newStore(t)
	in := Record{Anchor: "\xff\x00raw", DN: "cn=M\xfcller", Name: "m\xfc@x", Problem: "bad \xfc"}
	if err := s.Update([]Record{in}, nil); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(in.Anchor)
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	want := Record{Anchor: in.Anchor, DN: "cn=M\uFFFDller", Name: "m\uFFFD@x", Problem: "bad \uFFFD"}
	assertRecord(t, got, want)
}

func TestUpdateDeletes(t *testing.T) {
	cases := []struct {
		name    string
		deletes []string
		want    []string // anchors left
	}{
		{"one", []string{"b"}, []string{"a", "c"}},
		{"absent anchor is fine", []string{"zz"}, []string{"a", "b", "c"}},
		{"all, one twice", []string{"c", "a", "b", "a"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := newStore(t)
			if err := s.Update([]Record{{Anchor: "a"}, {Anchor: "b"}, {Anchor: "c"}}, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Update(nil, c.deletes); err != nil {
				t.Fatal(err)
			}
			if got := anchors(t, s); !slices.Equal(got, c.want) {
				t.Errorf("left %q, want %q", got, c.want)
			}
		})
	}
}

// Puts and deletes of different anchors land together.
func TestUpdatePutsAndDeletes(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Update([]Record{{Anchor: "old"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Update([]Record{{Anchor: "new"}}, []string{"old"}); err != nil {
		t.Fatal(err)
	}
	if got := anchors(t, s); !slices.Equal(got, []string{"new"}) {
		t.Errorf("anchors %q, want [new]", got)
	}
	if err := s.Update(nil, nil); err != nil {
		t.Errorf("empty Update: %v", err)
	}
}

func anchors(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	if err := s.ForEach(func(r Record) error {
		out = append(out, r.Anchor)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestForEachOrder(t *testing.T) {
	in := []string{"b", "a", "B", "aa", "é", "0", "a\x00", "Zz", "\xff"}
	s, _ := newStore(t)
	var puts []Record
	for _, a := range in {
		puts = append(puts, Record{Anchor: a, DN: "cn=" + a})
	}
	if err := s.Update(puts, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"0", "B", "Zz", "a", "a\x00", "aa", "b", "é", "\xff"} // byte order
	var got []string
	err := s.ForEach(func(r Record) error {
		if r.DN != "cn="+strings.ToValidUTF8(r.Anchor, "\uFFFD") { // DN is text for people
			t.Errorf("record %q has DN %q", r.Anchor, r.DN)
		}
		got = append(got, r.Anchor)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
}

func TestForEachStops(t *testing.T) {
	s, _ := newStore(t)
	var puts []Record
	for i := range 10 {
		puts = append(puts, Record{Anchor: fmt.Sprintf("u%02d", i)})
	}
	if err := s.Update(puts, nil); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("enough")
	for _, n := range []int{1, 3, 10} {
		var seen []string
		err := s.ForEach(func(r Record) error {
			seen = append(seen, r.Anchor)
			if len(seen) == n {
				return stop
			}
			return nil
		})
		if err != stop { //nolint:errorlint // fn's error must come back unchanged
			t.Errorf("stop after %d: err = %v, want the callback's own error", n, err)
		}
		if len(seen) != n || seen[n-1] != fmt.Sprintf("u%02d", n-1) {
			t.Errorf("stop after %d: saw %q", n, seen)
		}
	}
}

func TestCount(t *testing.T) {
	cases := []struct {
		name    string
		puts    int // records u0..u(puts-1)
		again   int // of them put a second time
		deletes int // of them deleted afterwards
		want    int
	}{
		{"empty", 0, 0, 0, 0},
		{"three", 3, 0, 0, 3},
		{"same anchor twice counts once", 3, 3, 0, 3},
		{"many pages", 2500, 100, 0, 2500},
		{"many pages, some deleted", 2500, 0, 700, 1800},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := newStore(t)
			var puts []Record
			for i := range c.puts {
				puts = append(puts, benchRecord(i))
			}
			puts = append(puts, puts[:c.again]...)
			var dels []string
			for i := range c.deletes {
				dels = append(dels, benchRecord(i).Anchor)
			}
			if err := s.Update(puts, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Update(nil, dels); err != nil {
				t.Fatal(err)
			}
			n, err := s.Count()
			if err != nil || n != c.want {
				t.Errorf("Count = %d, %v; want %d", n, err, c.want)
			}
			if scanned := len(anchors(t, s)); scanned != c.want {
				t.Errorf("ForEach saw %d records, want %d", scanned, c.want)
			}
		})
	}
}

func TestProblems(t *testing.T) {
	s, _ := newStore(t)
	recs := []Record{
		{Anchor: "d", Problem: "cloud user not found"}, // no ProblemAt: the filter must not need it
		{Anchor: "a", DN: `cn=a "problem":x`},          // the filter's key inside a value
		{Anchor: "c", Targets: map[string]TargetRecord{"problem": {Values: []string{"v"}}}},
		{Anchor: "b", Problem: "synced by Entra Connect", ProblemAt: when, Targets: map[string]TargetRecord{"t": {CloudID: "x"}}},
		{Anchor: "e"},
	}
	if err := s.Update(recs, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Problems()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Anchor != "b" || got[1].Anchor != "d" {
		t.Fatalf("Problems = %+v, want b and d", got)
	}
	assertRecord(t, got[0], recs[3])
	assertRecord(t, got[1], recs[0])

	// Clearing the problem takes the user off the list.
	if err := s.Update([]Record{{Anchor: "d"}}, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Problems(); err != nil || len(got) != 0 {
		t.Errorf("Problems after clearing = %+v, %v; want none", got, err)
	}
}

// A watermark must never land without the results it covers, nor results
// without their watermark.
func TestCommitMetaWithRecords(t *testing.T) {
	type mark struct{ USN int64 }
	s, _ := newStore(t)
	if err := s.Commit(Commit{Puts: []Record{{Anchor: "a"}}, Meta: map[string]any{"wm": mark{7}}}); err != nil {
		t.Fatal(err)
	}
	var got mark
	if ok, err := s.Meta("wm", &got); err != nil || !ok || got.USN != 7 {
		t.Fatalf("Meta = %+v, %v, %v; want USN 7", got, ok, err)
	}
	if _, ok, _ := s.Get("a"); !ok {
		t.Fatal("record a not written")
	}

	cases := []struct {
		name string
		c    Commit
	}{
		{"bad record", Commit{Puts: []Record{{Anchor: "b"}, {DN: "cn=no-anchor"}}, Meta: map[string]any{"wm": mark{9}}}},
		{"record too large for bbolt", Commit{Puts: []Record{{Anchor: "b"}, {Anchor: strings.Repeat("x", 40000)}}, Meta: map[string]any{"wm": mark{9}}}},
		{"unencodable meta", Commit{Puts: []Record{{Anchor: "b"}}, Meta: map[string]any{"wm": func() {}}}},
		{"empty meta key", Commit{Puts: []Record{{Anchor: "b"}}, Meta: map[string]any{"": mark{9}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := s.Commit(c.c); err == nil || !strings.Contains(err.Error(), "nothing written") {
				t.Fatalf("Commit = %v; want an error saying nothing was written", err)
			}
			var got mark
			if ok, err := s.Meta("wm", &got); err != nil || !ok || got.USN != 7 {
				t.Errorf("Meta after failed commit = %+v, %v, %v; want USN 7", got, ok, err)
			}
			if _, ok, _ := s.Get("b"); ok {
				t.Error("record b written by a failed commit")
			}
		})
	}
}
