package state

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func settledFor(b byte, until time.Time, notAfter ...time.Time) Settled {
	s := Settled{Until: until, NotAfter: notAfter}
	s.Inputs[0] = b
	return s
}

// TestBriefsFollowRecords: every put, delete and settled mark lands in the
// briefs in the same commit, and a put without a mark drops the old one.
func TestBriefsFollowRecords(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "state.db"), Options{})
	until := time.Date(2027, 1, 2, 3, 4, 5, 6, time.UTC)
	expiry := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) // beyond UnixNano
	alice := Record{Anchor: "alice", Source: "corp", Targets: map[string]TargetRecord{
		"graph.certificateUserIds": {CloudID: "c1", Values: []string{"X509:<SKI>01"}},
		"exchange.userCertificate": {Pending: []string{"AAAA"}},
	}}
	bob := Record{Anchor: "bob", Source: "lab", Targets: map[string]TargetRecord{"graph.certificateUserIds": {Kept: []string{"X509:<SKI>02"}}}}
	steps := []struct {
		name string
		c    Commit
		want map[string]Brief
	}{
		{"put with a mark", Commit{Puts: []Record{alice, bob}, Settled: map[string]Settled{"bob": settledFor(2, until, expiry)}},
			map[string]Brief{
				"alice": {Anchor: "alice", Source: "corp", Held: []string{"graph.certificateUserIds"}, Pending: true},
				"bob":   {Anchor: "bob", Source: "lab", Settled: &Settled{Inputs: settledFor(2, until).Inputs, Until: until, NotAfter: []time.Time{expiry}}},
			}},
		{"mark a stored record, skip an unknown one", Commit{Settled: map[string]Settled{"alice": settledFor(1, time.Time{}), "nobody": settledFor(9, until)}},
			map[string]Brief{
				"alice": {Anchor: "alice", Source: "corp", Held: []string{"graph.certificateUserIds"}, Pending: true, Settled: &Settled{Inputs: settledFor(1, until).Inputs}},
				"bob":   {Anchor: "bob", Source: "lab", Settled: &Settled{Inputs: settledFor(2, until).Inputs, Until: until, NotAfter: []time.Time{expiry}}},
			}},
		{"a put without a mark drops it; a delete drops the brief", Commit{Puts: []Record{alice}, Deletes: []string{"bob"}},
			map[string]Brief{"alice": {Anchor: "alice", Source: "corp", Held: []string{"graph.certificateUserIds"}, Pending: true}}},
	}
	for _, st := range steps {
		if err := s.Commit(st.c); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := map[string]Brief{}
		if err := s.ForEachBrief(func(b Brief) error { got[b.Anchor] = b; return nil }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Errorf("%s: briefs\n got %s\nwant %s", st.name, briefsText(got), briefsText(st.want))
		}
		for anchor, want := range st.want {
			b, ok, err := s.Brief(anchor)
			if err != nil || !ok || !reflect.DeepEqual(b, want) {
				t.Errorf("%s: Brief(%s) = %+v, %v, %v", st.name, anchor, b, ok, err)
			}
		}
	}
	if _, ok, err := s.Brief("bob"); ok || err != nil {
		t.Errorf("Brief of a deleted record: %v, %v", ok, err)
	}
}

func briefsText(m map[string]Brief) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// TestBriefsOfSchema1: a file written before briefs existed gets one per
// record when opened for writing, and is read the same without them when
// opened read-only.
func TestBriefsOfSchema1(t *testing.T) {
	rec := Record{Anchor: "alice", Source: "corp", Targets: map[string]TargetRecord{"graph.certificateUserIds": {CloudID: "c1", Values: []string{"X509:<SKI>01"}}}}
	raw, err := encodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := Brief{Anchor: "alice", Source: "corp", Held: []string{"graph.certificateUserIds"}}
	for _, ro := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "state.db")
		makeBolt(t, path, map[string]map[string]string{"schema": {"version": "1"}, "users": {"alice": string(raw)}, "pass": {}, "meta": {}})
		s := openTest(t, path, Options{ReadOnly: ro})
		var got []Brief
		if err := s.ForEachBrief(func(b Brief) error { got = append(got, b); return nil }); err != nil {
			t.Fatal(err)
		}
		b, ok, err := s.Brief("alice")
		if len(got) != 1 || !reflect.DeepEqual(got[0], want) || !ok || err != nil || !reflect.DeepEqual(b, want) {
			t.Errorf("read-only %v: ForEachBrief %+v, Brief %+v %v %v; want %+v", ro, got, b, ok, err, want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if !ro {
			assertBucketKeys(t, path, bucketBriefs, "alice")
			assertVersion(t, path, "2")
		}
	}
}

func FuzzDecodeBrief(f *testing.F) {
	for _, b := range []Brief{
		{Source: "corp"},
		{Source: "corp", Held: []string{"a", "b"}, Pending: true},
		{Held: []string{"graph.certificateUserIds"}, Settled: &Settled{Until: time.Unix(1e9, 5), NotAfter: []time.Time{{}, time.Unix(-1e12, 0)}}},
	} {
		f.Add(encodeBrief(b))
	}
	f.Add([]byte{briefVersion, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := decodeBrief([]byte("k"), raw)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes, or to bytes that
		// decode to the same brief (a time of zero written as set).
		again, err := decodeBrief([]byte("k"), encodeBrief(b))
		if err != nil {
			t.Fatalf("re-encoded brief does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, b) && !bytes.Equal(encodeBrief(again), encodeBrief(b)) {
			t.Fatalf("round trip changed the brief: %+v then %+v", b, again)
		}
	})
}

func assertBucketKeys(t *testing.T, path, bucket string, want ...string) {
	t.Helper()
	var got []string
	withBolt(t, path, func(tx *bolt.Tx) {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			t.Fatalf("no bucket %s", bucket)
		}
		_ = b.ForEach(func(k, _ []byte) error { got = append(got, string(k)); return nil })
	})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bucket %s holds %q, want %q", bucket, got, want)
	}
}

func assertVersion(t *testing.T, path, want string) {
	t.Helper()
	withBolt(t, path, func(tx *bolt.Tx) {
		if got := string(tx.Bucket([]byte(bucketSchema)).Get([]byte(keyVersion))); got != want {
			t.Errorf("schema version %q, want %q", got, want)
		}
	})
}

func withBolt(t *testing.T, path string, fn func(*bolt.Tx)) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error { fn(tx); return nil }); err != nil {
		t.Fatal(err)
	}
}

// A batch read whose transaction cannot start gives every anchor the
// error, naming it, and never reads as "not found".
func TestBatchReadsOfAClosedStore(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	anchors := []string{"anchor-1", "anchor-2"}
	got := 0
	s.Briefs(anchors, func(i int, _ Brief, found bool, err error) {
		got++
		if found || err == nil || !strings.Contains(err.Error(), anchors[i]) {
			t.Errorf("brief %d: found %v, error %v; want an error naming %s", i, found, err, anchors[i])
		}
	})
	s.Records(anchors, func(i int, _ Record, found bool, err error) {
		got++
		if found || err == nil || !strings.Contains(err.Error(), anchors[i]) {
			t.Errorf("record %d: found %v, error %v; want an error naming %s", i, found, err, anchors[i])
		}
	})
	if got != 4 {
		t.Fatalf("%d answers for 2 briefs and 2 records", got)
	}
}
