package state

import (
	"crypto/sha256"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestChains: chains round-trip, a file without the bucket remembers
// nothing, a read-only store reads them and says it takes no writes, and
// pruning forgets exactly the chains of expired certificates.
func TestChains(t *testing.T) {
	s, path := newStore(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sum := func(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }
	if _, ok, err := s.Chain(sum("a")); ok || err != nil {
		t.Fatalf("a new file: found %v, %v; want nothing", ok, err)
	}
	a := Chain{CAs: [][sha256.Size]byte{sum("issuing"), sum("root")}, From: now.AddDate(-1, 0, 0), Until: now.AddDate(5, 0, 0), Expires: now.AddDate(0, 6, 0)}
	b := Chain{From: now.AddDate(-2, 0, 0), Until: now.Add(time.Hour), Expires: now.Add(-time.Second)}
	if !s.Writable() {
		t.Fatal("a store opened for writing says it is not writable")
	}
	if err := s.PutChains(map[[sha256.Size]byte]Chain{sum("a"): a, sum("b"): b}, false, now); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Chain{"a": a, "b": b} {
		got, ok, err := s.Chain(sum(name))
		if err != nil || !ok || !got.From.Equal(want.From) || !got.Until.Equal(want.Until) || !got.Expires.Equal(want.Expires) || len(got.CAs) != len(want.CAs) {
			t.Fatalf("%s: got %+v, %v, %v; want %+v", name, got, ok, err, want)
		}
		for i := range want.CAs {
			if got.CAs[i] != want.CAs[i] {
				t.Fatalf("%s: CA %d differs", name, i)
			}
		}
	}
	// A damaged value reads as not remembered, and pruning drops it.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		k := sum("broken")
		return tx.Bucket([]byte(bucketChains)).Put(k[:], []byte{9, 9})
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Chain(sum("broken")); ok || err != nil {
		t.Fatalf("a damaged value: found %v, %v", ok, err)
	}
	if err := s.PutChains(nil, true, now); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"a": true, "b": false, "broken": false} {
		if _, ok, err := s.Chain(sum(name)); ok != want || err != nil {
			t.Errorf("after pruning, %s found %v (%v); want %v", name, ok, err, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openTest(t, path, Options{ReadOnly: true})
	if ro.Writable() {
		t.Error("a read-only store says it is writable")
	}
	if _, ok, err := ro.Chain(sum("a")); !ok || err != nil {
		t.Errorf("read-only: %v, %v", ok, err)
	}
	if err := ro.PutChains(map[[sha256.Size]byte]Chain{sum("c"): a}, false, now); err == nil {
		t.Error("a read-only store took a write")
	}
}
