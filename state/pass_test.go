package state

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLastPass(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, Options{})
	if p, ok, err := s.LastPass(); err != nil || ok || !reflect.DeepEqual(p, PassSummary{}) {
		t.Fatalf("LastPass on a new file = %+v, %v, %v; want zero, false, nil", p, ok, err)
	}
	passes := []PassSummary{
		{
			Started: when, Finished: when.Add(3 * time.Second), Mode: "full", Result: "partial",
			Error:     "2 users failed",
			UsersRead: 10000, UsersChanged: 12, UsersFailed: 2, UsersUnmatched: 5,
			ValuesAdded: 14, ValuesRemoved: 3, CertificatesRejected: 7, UsersSkipped: 4,
			Sources: []SourcePass{{Name: "contoso", Mode: "full", UsersRead: 10000}, {Name: "lab", Mode: "full", Error: "dc02 unreachable"}},
		},
		// A later pass replaces every field, zeros included.
		{Started: when.Add(time.Hour), Finished: when.Add(time.Hour + time.Second), Mode: "user", Result: "ok", UsersRead: 1},
	}
	for i, want := range passes {
		if err := s.SetLastPass(want); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.LastPass()
		if err != nil || !ok {
			t.Fatalf("pass %d: LastPass = %v, %v", i, ok, err)
		}
		got.Started, got.Finished = got.Started.UTC(), got.Finished.UTC()
		want.Started, want.Finished = want.Started.UTC(), want.Finished.UTC()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pass %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := openTest(t, path, Options{ReadOnly: true})
	if got, ok, err := r.LastPass(); err != nil || !ok || got.Mode != "user" {
		t.Errorf("LastPass after reopen = %+v, %v, %v", got, ok, err)
	}
}

// watermark is the kind of value later issues keep in the meta area.
type watermark struct {
	Host         string `json:"host"`
	InvocationID string `json:"invocationId"`
	USN          int64  `json:"usn"`
}

func TestMetaRoundTrip(t *testing.T) {
	cases := []struct {
		key  string
		in   any
		out  func() any // a pointer to decode into
		want any        // what out points to afterwards
	}{
		{"ldap.watermark", watermark{"dc1.example.com", "6f1c…", 1 << 40}, func() any { return new(watermark) }, &watermark{"dc1.example.com", "6f1c…", 1 << 40}},
		{"string", "hello", func() any { return new(string) }, ptr("hello")},
		{"int", 42, func() any { return new(int) }, ptr(42)},
		{"map", map[string]int{"a": 1}, func() any { return new(map[string]int) }, &map[string]int{"a": 1}},
		{"slice", []string{"x", "y"}, func() any { return new([]string) }, &[]string{"x", "y"}},
		{"null", nil, func() any { return new(*int) }, new(*int)},
		{"ключ with spaces", true, func() any { return new(bool) }, ptr(true)},
	}
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, Options{})
	for _, c := range cases {
		if err := s.SetMeta(c.key, c.in); err != nil {
			t.Fatalf("SetMeta(%q): %v", c.key, err)
		}
	}
	// Overwrite one: the last value wins.
	if err := s.SetMeta("int", 43); err != nil {
		t.Fatal(err)
	}
	cases[2].want = ptr(43)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := openTest(t, path, Options{ReadOnly: true})
	for _, c := range cases {
		out := c.out()
		ok, err := r.Meta(c.key, out)
		if err != nil || !ok {
			t.Errorf("Meta(%q) = %v, %v", c.key, ok, err)
			continue
		}
		if !reflect.DeepEqual(out, c.want) {
			t.Errorf("Meta(%q) = %#v, want %#v", c.key, out, c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestMetaErrors(t *testing.T) {
	s, path := newStore(t)
	if err := s.SetMeta("wm", watermark{Host: "dc1", USN: 7}); err != nil {
		t.Fatal(err)
	}

	// Absent key: false, and the destination is left alone.
	v := watermark{Host: "untouched"}
	if ok, err := s.Meta("absent", &v); err != nil || ok || v.Host != "untouched" {
		t.Errorf("Meta(absent) = %v, %v, %+v", ok, err, v)
	}

	errs := []struct {
		name string
		do   func() error
		want []string
	}{
		{"SetMeta empty key", func() error { return s.SetMeta("", 1) }, []string{"empty key"}},
		{"Meta empty key", func() error { _, err := s.Meta("", new(int)); return err }, []string{"empty key"}},
		{"unencodable", func() error { return s.SetMeta("ch", make(chan int)) }, []string{`"ch"`, path}},
		{"wrong type", func() error { _, err := s.Meta("wm", new(int)); return err }, []string{`"wm"`, path}},
		{"not a pointer", func() error { _, err := s.Meta("wm", watermark{}); return err }, []string{`"wm"`}},
	}
	for _, e := range errs {
		err := e.do()
		if err == nil {
			t.Errorf("%s: no error", e.name)
			continue
		}
		for _, w := range e.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", e.name, err, w)
			}
		}
	}
	// The failed SetMeta wrote nothing.
	var x any
	if ok, err := s.Meta("ch", &x); err != nil || ok {
		t.Errorf("Meta(ch) = %v, %v after a failed SetMeta", ok, err)
	}
	// Meta keys and records live apart.
	if n, err := s.Count(); err != nil || n != 0 {
		t.Errorf("Count = %d, %v; meta must not count as records", n, err)
	}
}
