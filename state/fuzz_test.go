package state

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecodeRecord: whatever bytes sit under an anchor in the state file,
// decoding never panics, and a record that decodes encodes back (when its
// strings are valid UTF-8) to one that decodes the same.
func FuzzDecodeRecord(f *testing.F) {
	rec := Record{Anchor: "a", Source: "corp", DN: "CN=Alice,OU=People,DC=corp,DC=example", Name: "alice@corp.example",
		Targets: map[string]TargetRecord{
			"graph.certificateUserIds": {CloudID: "9d4b1a1e-56b8-4a4e-9c5a-2f0c4c2c1f10", Values: []string{"X509:<SKI>6FC1A1E3DA0C3E3FE0A3A3B5E7F0C6D6B8E2B1A4"}, Pending: []string{"X509:<SKI>00"}, Kept: []string{"X509:<PN>alice@corp.example"}},
			"exchange.UserCertificate": {CloudID: "box", Values: []string{"MIIBszCCAVmgAwIBAgIUQ=="}},
		},
		Problem: "no cloud user matches mail alice@corp.example", ProblemAt: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	raw, err := encodeRecord(rec)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{raw, []byte(`{}`), []byte(`{"targets":null}`), []byte(`{"targets":{"x":{"values":[1]}}}`), []byte(`[]`), []byte(`{"updatedAt":"not a time"}`), raw[:len(raw)/2]} {
		f.Add([]byte("anchor"), s)
	}
	f.Fuzz(func(t *testing.T, anchor, raw []byte) {
		r, err := decodeRecord(anchor, raw)
		if err != nil {
			return
		}
		again, err := encodeRecord(r)
		if err != nil {
			if validStrings(r) {
				t.Fatalf("a decoded record does not encode: %v", err)
			}
			return
		}
		// Empty and nil slices both encode as nothing: compare encodings.
		r2, err := decodeRecord(anchor, again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if third, err := encodeRecord(r2); err != nil || !bytes.Equal(again, third) {
			t.Fatalf("round trip: %s\n%s (%v)", again, third, err)
		}
	})
}

func validStrings(r Record) bool {
	for name, t := range r.Targets {
		if !utf8.ValidString(name) || !utf8.ValidString(t.CloudID) {
			return false
		}
		for _, v := range append(append(append([]string{}, t.Values...), t.Pending...), t.Kept...) {
			if !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
}

// FuzzOpenCorrupted: a real state file with bytes overwritten anywhere
// and maybe cut short either is refused by Open with an error, or opens
// and reads without a panic. It never crashes the agent.
func FuzzOpenCorrupted(f *testing.F) {
	base := filepath.Join(f.TempDir(), "state.db")
	s, err := Open(base, Options{})
	if err != nil {
		f.Fatal(err)
	}
	var recs []Record
	for i := range 300 {
		recs = append(recs, Record{Anchor: string(rune('a'+i%26)) + time.Duration(i).String(), Name: "user@example.test",
			Targets: map[string]TargetRecord{"graph.certificateUserIds": {CloudID: "c", Values: []string{"X509:<SKI>0123456789ABCDEF0123456789ABCDEF01234567"}}}})
	}
	if err := s.Update(recs, nil); err != nil {
		f.Fatal(err)
	}
	if err := s.SetLastPass(PassSummary{Result: "ok"}); err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	file, err := os.ReadFile(base)
	if err != nil {
		f.Fatal(err)
	}
	page := uint32(os.Getpagesize())
	f.Add(uint32(0), []byte{}, uint32(0))                          // as written
	f.Add(uint32(16), make([]byte, 64), uint32(0))                 // torn first meta
	f.Add(uint32(16), make([]byte, 64), uint32(len(file))/2)       // torn and cut
	f.Add(uint32(page+16), []byte{0xff, 0xff, 0xff}, uint32(0))    // second meta
	f.Add(2*page, []byte{0x04, 0x00, 0x01, 0x00}, uint32(0))       // a page header
	f.Add(3*page+16, []byte("garbage garbage garbage"), uint32(0)) // page content
	f.Add(uint32(len(file))-100, []byte{1, 2, 3, 4, 5, 6, 7, 8}, uint32(0))
	f.Fuzz(func(t *testing.T, at uint32, data []byte, cut uint32) {
		b := append([]byte(nil), file...)
		if len(data) > 0 {
			copy(b[int(at)%len(b):], data)
		}
		if cut > 0 {
			b = b[:int(cut)%len(b)]
		}
		path := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			return
		}
		defer s.Close()
		_, _ = s.Count()
		_ = s.ForEach(func(Record) error { return nil })
		_, _, _ = s.Get("a0s")
		_, _ = s.Problems()
		_, _, _ = s.LastPass()
	})
}
