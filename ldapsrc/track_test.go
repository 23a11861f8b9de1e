package ldapsrc

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// FuzzDecodeWatermark: whatever bytes the state file hands back, decoding
// never panics, and a watermark it accepts is reproduced by encoding it.
func FuzzDecodeWatermark(f *testing.F) {
	for _, w := range []watermark{
		{V: 1, Mode: TrackUSN, Scope: "ab", DNSHostName: "dc1.samba.test", InvocationID: "0a6d2268-1620-4e52-80ff-219abf69eed4", USN: 4242},
		{V: 1, Mode: TrackDirSync, Scope: "ab", DNSHostName: "dc1", InvocationID: "x", USN: 1, Cookie: []byte{0, 1, 2, 0xff}},
		{V: 1, Mode: TrackTimestamp, Scope: "ab", Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
	} {
		b, err := w.encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"mode":"usn"}`))
	f.Add([]byte(`{"v":1,"mode":"modifyTimestamp","since":"not a time"}`))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := decodeWatermark(b)
		if err != nil {
			return
		}
		again, err := w.encode()
		if err != nil {
			t.Fatalf("encode of an accepted watermark: %v", err)
		}
		w2, err := decodeWatermark(again)
		if err != nil || !reflect.DeepEqual(w, w2) {
			t.Fatalf("round trip: %+v → %s → %+v (%v)", w, again, w2, err)
		}
	})
}

// TestUsable: the decision between an incremental and a full read, for
// every way a watermark can stop fitting.
func TestUsable(t *testing.T) {
	s := &Source{cfg: Config{URL: "ldap://dc1"}, log: zaptest.NewLogger(t)}
	cur := watermark{V: 1, Mode: TrackUSN, Scope: "s1", DNSHostName: "dc1.samba.test", InvocationID: "inv-1", USN: 100}
	enc := func(mod func(*watermark)) []byte {
		w := cur
		mod(&w)
		b, err := w.encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name  string
		since []byte
		want  string // substring of the reason; empty: incremental
	}{
		{"same DC, older USN", enc(func(w *watermark) { w.USN = 90 }), ""},
		{"same DC, host name in other case", enc(func(w *watermark) { w.DNSHostName = "DC1.SAMBA.TEST" }), ""},
		{"none", nil, "no watermark"},
		{"empty", []byte{}, "watermark unusable"},
		{"garbled", []byte("{"), "watermark unusable"},
		{"old version", enc(func(w *watermark) { w.V = 0 }), "watermark version 0"},
		{"missing invocationId", enc(func(w *watermark) { w.InvocationID = "" }), "without DC name, invocationId or USN"},
		{"dirsync without cookie", enc(func(w *watermark) { w.Mode = TrackDirSync }), "dirsync watermark without a cookie"},
		{"other mode", enc(func(w *watermark) { w.Mode, w.Since = TrackTimestamp, time.Now() }), "changed from modifyTimestamp to usn"},
		{"other scope", enc(func(w *watermark) { w.Scope = "s2" }), "filter or attributes changed"},
		{"another DC", enc(func(w *watermark) { w.DNSHostName = "dc2.samba.test" }), "another DC: watermark from dc2.samba.test, now reading from dc1.samba.test"},
		{"restored DC", enc(func(w *watermark) { w.InvocationID = "inv-0" }), "DC restored (invocationId changed): dc1.samba.test had invocationId inv-0, now inv-1"},
		{"USN ahead", enc(func(w *watermark) { w.USN = 101 }), "went back in time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, reason := s.usable(tc.since, cur)
			if (tc.want == "") != (reason == "") || !strings.Contains(reason, tc.want) {
				t.Fatalf("reason %q, want %q", reason, tc.want)
			}
		})
	}
}

func TestNamingContextOf(t *testing.T) {
	d := rootDSE{defaultNamingContext: "DC=samba,DC=test",
		namingContexts: []string{"DC=samba,DC=test", "CN=Configuration,DC=samba,DC=test", "DC=DomainDnsZones,DC=samba,DC=test"}}
	for base, want := range map[string]string{
		"OU=People,DC=samba,DC=test":                    "DC=samba,DC=test",
		"dc=samba,dc=test":                              "DC=samba,DC=test",
		"CN=Services,CN=Configuration,DC=samba,DC=test": "CN=Configuration,DC=samba,DC=test",
		"DC=other,DC=test":                              "DC=samba,DC=test",
	} {
		if got := namingContextOf(base, d); got != want {
			t.Errorf("namingContextOf(%q) = %q, want %q", base, got, want)
		}
	}
	if got := escapeBytes([]byte{0x00, 0x2a, 0xff}); !bytes.Equal([]byte(got), []byte(`\00\2a\ff`)) {
		t.Errorf("escapeBytes = %q", got)
	}
}
