package state

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// randomAnchors returns n distinct anchors in random order, as Active
// Directory's objectGUIDs are: each lands on a page of its own.
func randomAnchors(r *rand.Rand, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
	}
	return out
}

// txID is the id of the state file's last committed write transaction.
func txID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// filled is a store holding n records with random anchors, each with a
// value on target "t".
func filled(t *testing.T, r *rand.Rand, n int) (*Store, []string) {
	t.Helper()
	s, _ := newStore(t)
	anchors := randomAnchors(r, n)
	puts := make([]Record, n)
	for i, a := range anchors {
		puts[i] = Record{Anchor: a, DN: "cn=" + a, Source: "lab", Targets: map[string]TargetRecord{"t": {Values: []string{"v" + a}}}}
	}
	if err := s.Update(puts, nil); err != nil {
		t.Fatal(err)
	}
	return s, anchors
}

// A commit of many users spread over a large file goes in several
// transactions (each changing about dirtyBudget pages, so that what a
// commit maps of the file stays bounded), and lands whole: every put
// with its brief and mark, every delete, every mark of a stored record,
// the later of two puts of one anchor, and the meta value.
func TestLargeCommitGoesInParts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s, stored := filled(t, r, 20_000)
	deleted, marked := stored[:1000], stored[1000:2000]
	fresh := randomAnchors(r, 3000)
	mark := Settled{Inputs: sha256.Sum256([]byte("inputs")), Until: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}

	c := Commit{Settled: map[string]Settled{}, Meta: map[string]any{"wm": 42}}
	c.Puts = append(c.Puts, Record{Anchor: fresh[0], DN: "cn=first-put"})
	for i, a := range fresh {
		c.Puts = append(c.Puts, Record{Anchor: a, DN: "cn=" + a, Source: "lab"})
		if i%2 == 0 {
			c.Settled[a] = mark
		}
	}
	c.Puts = append(c.Puts, Record{Anchor: fresh[0], DN: "cn=last-put", Source: "lab"})
	c.Deletes = deleted
	for _, a := range marked {
		c.Settled[a] = mark
	}
	before := txID(t, s)
	if err := s.Commit(c); err != nil {
		t.Fatal(err)
	}
	// 5,000 changes on random pages of two buckets of about 20,000 keys:
	// thousands of pages, so dozens of transactions. One transaction (no
	// budget) or one per change (a budget never met) both fail.
	changes := len(fresh) + len(deleted) + len(marked)
	if parts := txID(t, s) - before; parts < 20 || parts > changes/10 {
		t.Errorf("the commit took %d transactions; want between 20 and %d", parts, changes/10)
	}

	if n, err := s.Count(); err != nil || n != len(stored)-len(deleted)+len(fresh) {
		t.Errorf("Count = %d, %v; want %d", n, err, len(stored)-len(deleted)+len(fresh))
	}
	var meta int
	if ok, err := s.Meta("wm", &meta); err != nil || !ok || meta != 42 {
		t.Errorf("Meta(wm) = %d, %v, %v; want 42", meta, ok, err)
	}
	if got, _, err := s.Get(fresh[0]); err != nil || got.DN != "cn=last-put" {
		t.Errorf("Get(%s) = %q, %v; want the later put (cn=last-put)", fresh[0], got.DN, err)
	}
	check := func(anchors []string, wantRecord, wantMark bool) {
		t.Helper()
		s.Records(anchors, func(i int, _ Record, found bool, err error) {
			if err != nil || found != wantRecord {
				t.Errorf("record %s: found %v, %v; want %v", anchors[i], found, err, wantRecord)
			}
		})
		s.Briefs(anchors, func(i int, b Brief, found bool, err error) {
			if err != nil || found != wantRecord || (b.Settled != nil) != wantMark {
				t.Errorf("brief %s: found %v (marked %v), %v; want %v (marked %v)", anchors[i], found, b.Settled != nil, err, wantRecord, wantMark)
			}
		})
	}
	var evenFresh, oddFresh []string
	for i, a := range fresh {
		if i%2 == 0 {
			evenFresh = append(evenFresh, a)
		} else {
			oddFresh = append(oddFresh, a)
		}
	}
	check(evenFresh[1:], true, true) // [0] was put again last, without a mark
	check(oddFresh, true, false)
	check(deleted, false, false)
	check(marked, true, true)
	check(stored[2000:3000], true, false)
}

// A write that fails part way through a large commit leaves the parts
// before it written, each record with its brief, and no meta value, and
// says so; nothing refused for its content is written at all
// (TestUpdateIsAtomic, TestCommitMetaWithRecords).
func TestCommitFailingPartWay(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	s, stored := filled(t, r, 10_000)
	var puts []Record
	for _, a := range randomAnchors(r, 3000) {
		puts = append(puts, Record{Anchor: a, DN: "cn=" + a, Source: "lab", Targets: map[string]TargetRecord{"t": {Values: []string{"v"}}}})
	}
	// Sorts after every hex anchor: it is written last, and bbolt refuses
	// a key that large.
	puts = append(puts, Record{Anchor: "~" + strings.Repeat("x", 40000)})
	err := s.Commit(Commit{Puts: puts, Meta: map[string]any{"wm": 1}})
	if err == nil || !strings.Contains(err.Error(), "key too large") || !strings.Contains(err.Error(), "changes written before it") {
		t.Fatalf("Commit = %v; want bbolt's refusal, saying how many changes were written", err)
	}
	n, err := s.Count()
	if err != nil || n <= len(stored) || n >= len(stored)+len(puts) {
		t.Errorf("Count = %d, %v; want some but not all of the %d puts written", n, err, len(puts))
	}
	briefs := 0
	if err := s.ForEachBrief(func(Brief) error { briefs++; return nil }); err != nil || briefs != n {
		t.Errorf("%d briefs, %v; want one per record (%d)", briefs, err, n)
	}
	if ok, err := s.Meta("wm", new(int)); err != nil || ok {
		t.Errorf("Meta(wm) found %v, %v: a watermark must not land before every result it covers", ok, err)
	}
}

// Chains go in parts too, and pruning forgets exactly the expired ones.
func TestPutChainsInParts(t *testing.T) {
	s, _ := newStore(t)
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	chains := map[[sha256.Size]byte]Chain{}
	for i := range 10_000 {
		expires := now.AddDate(1, 0, 0)
		if i%5 == 0 {
			expires = now.AddDate(0, 0, -1)
		}
		chains[sha256.Sum256(fmt.Appendf(nil, "cert %d", i))] = Chain{From: now.AddDate(-1, 0, 0), Until: expires, Expires: expires}
	}
	// The first half fills an empty bucket in key order: one node, however
	// many keys. The second lands all over the pages the first wrote.
	first, second := map[[sha256.Size]byte]Chain{}, map[[sha256.Size]byte]Chain{}
	for sum, c := range chains {
		if len(first) < len(chains)/2 {
			first[sum] = c
		} else {
			second[sum] = c
		}
	}
	if err := s.PutChains(first, false, now); err != nil {
		t.Fatal(err)
	}
	before := txID(t, s)
	if err := s.PutChains(second, false, now); err != nil {
		t.Fatal(err)
	}
	if parts := txID(t, s) - before; parts < 2 || parts > len(second)/10 {
		t.Errorf("%d chains took %d transactions; want between 2 and %d", len(second), parts, len(second)/10)
	}
	if err := s.PutChains(nil, true, now); err != nil {
		t.Fatal(err)
	}
	for sum, c := range chains {
		_, found, err := s.Chain(sum)
		if err != nil || found != c.Expires.After(now) {
			t.Fatalf("Chain(%x) found %v, %v; want %v (expires %s)", sum[:4], found, err, c.Expires.After(now), c.Expires)
		}
	}
}
