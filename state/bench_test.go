package state

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// benchRecord is a realistic record: an objectGUID-style anchor (base64 of
// 16 bytes, in no useful order), an AD DN, a mail, one Graph target with two
// SKI bindings.
func benchRecord(i int) Record {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(i))
	h := sha256.Sum256(n[:])
	ski := hex.EncodeToString(h[16:])
	return Record{
		Anchor: base64.StdEncoding.EncodeToString(h[:16]),
		DN:     fmt.Sprintf("CN=User %d,OU=People,OU=Staff,DC=corp,DC=example,DC=com", i),
		Name:   fmt.Sprintf("user%d@corp.example.com", i),
		Targets: map[string]TargetRecord{
			"graph.certificateUserIds": {
				CloudID: hex.EncodeToString(h[:16]),
				Values:  []string{"X509:<SKI>" + ski, "X509:<SKI>" + ski[:20] + "00"},
			},
		},
		UpdatedAt: time.Date(2026, 1, 1, 0, 0, i%60, 0, time.UTC),
	}
}

// fillBench writes n records in batches of 500, as passes would.
func fillBench(b *testing.B, s *Store, n int) []Record {
	b.Helper()
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = benchRecord(i)
	}
	for lo := 0; lo < n; lo += 500 {
		if err := s.Update(recs[lo:min(lo+500, n)], nil); err != nil {
			b.Fatal(err)
		}
	}
	return recs
}

func BenchmarkGet(b *testing.B) {
	const n = 10000
	s := openTest(b, filepath.Join(b.TempDir(), "state.db"), Options{})
	recs := fillBench(b, s, n)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok, err := s.Get(recs[i%n].Anchor); err != nil || !ok {
			b.Fatalf("Get: %v, %v", ok, err)
		}
		i++
	}
}

// BenchmarkUpdate commits batches of 500 changed records (one pass's worth
// of changes) into a file of 10,000. Each commit is fsynced.
func BenchmarkUpdate(b *testing.B) {
	const n, batch = 10000, 500
	s := openTest(b, filepath.Join(b.TempDir(), "state.db"), Options{})
	recs := fillBench(b, s, n)
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		lo := (round * batch) % n
		puts := recs[lo : lo+batch]
		for i := range puts {
			puts[i].UpdatedAt = puts[i].UpdatedAt.Add(time.Second)
		}
		if err := s.Update(puts, nil); err != nil {
			b.Fatal(err)
		}
		round++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(round*batch), "ns/record")
}
