package main

import (
	"fmt"
	"testing"
	"time"
)

// exchangeCounts counts the Exchange requests since the last reset: reads
// (Get-Mailbox / Get-MailUser) and writes (Set-*).
func (w *world) exchangeCounts() (reads, writes int) {
	for _, r := range w.exo.Requests() {
		switch r.Cmdlet {
		case "Get-Mailbox", "Get-MailUser":
			reads++
		case "Set-Mailbox", "Set-MailUser":
			writes++
		}
	}
	return reads, writes
}

// exchangePasses runs a first pass, a no-change pass and a no-change
// --reconcile pass over n mailboxes and returns the request counts and
// each pass's wall time.
func exchangePasses(t testing.TB, n int) (counts [3][2]int, took [3]time.Duration) {
	people := make([]person, n)
	for i := range people {
		people[i] = person{uid: fmt.Sprintf("u%06d", i), certs: 1, mailbox: true}
	}
	w := newWorld(t, people, "", withExchange(""), withoutGraph)
	for i, args := range [][]string{nil, nil, {"--reconcile"}} {
		w.exo.ResetRequests()
		start := time.Now()
		w.syncJSON(0, args...)
		took[i] = time.Since(start)
		counts[i][0], counts[i][1] = w.exchangeCounts()
	}
	if w.exo.Writes() != n {
		t.Fatalf("%d mailboxes written, want %d", w.exo.Writes(), n)
	}
	return counts, took
}

// A large first pass lists recipients in pages instead of one Get-Mailbox
// per user: ⌈n/1000⌉ pages of mailboxes and one of mail users.
func TestExchangePagedReads(t *testing.T) {
	const n = 1500
	c, _ := exchangePasses(t, n)
	want := [3][2]int{{2 + 1, n}, {0, 0}, {2 + 1, 0}}
	if c != want {
		t.Fatalf("requests (reads, writes) per pass: first %v, no change %v, reconcile %v; want %v", c[0], c[1], c[2], want)
	}
}

// BenchmarkExchangeRequests reports the request counts and wall times of
// passes over 20,000 mailboxes in the Exchange emulator (the issue's
// measure; the emulator answers at once, so the times are certsync's own
// cost, not Exchange Online's):
//
//	go test ./cmd/certsync -run '^$' -bench ExchangeRequests -benchtime 1x
func BenchmarkExchangeRequests(b *testing.B) {
	for range b.N {
		c, took := exchangePasses(b, 20000)
		b.ReportMetric(float64(c[0][0]), "first-reads")
		b.ReportMetric(float64(c[0][1]), "first-writes")
		b.ReportMetric(float64(c[1][0]+c[1][1]), "nochange-requests")
		b.ReportMetric(float64(c[2][0]), "reconcile-reads")
		b.ReportMetric(float64(c[2][1]), "reconcile-writes")
		b.ReportMetric(took[0].Seconds(), "first-s")
		b.ReportMetric(took[1].Seconds(), "nochange-s")
		b.ReportMetric(took[2].Seconds(), "reconcile-s")
	}
}
