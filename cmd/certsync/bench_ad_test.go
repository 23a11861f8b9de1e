//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/certsync/certsync/ldapsrc/ldaptest"
)

// BenchmarkADPass measures what issue 4 asks to report: the cost of a
// no-change incremental pass over 5,000 Active Directory users next to a
// full pass, through the real binary, against the package's Samba DC and
// the Graph emulator. Each sub-benchmark times one `certsync sync`:
//
//   - full-first: a full read publishing every user;
//   - full-nochange: a full read of the same directory, nothing to write;
//   - incremental-nochange: `--incremental` after an incremental pass set
//     the watermark, nothing changed on the DC at all;
//   - incremental-outside-change: the same, but a user outside the filter
//     changed, so the DC's highestCommittedUSN moved and the pass has to
//     search (the usual case on a production DC, which never sits idle);
//   - incremental-one-change: one user's certificate replaced, then
//     `--incremental`: one user read, one cloud write.
//
// Each reports LDAP operations and users read (from the JSON report),
// cloud HTTP requests and writes (from the emulator's log), and the
// process's peak RSS when GNU time is installed. Seeding the DC and the
// untimed passes that set up a sub-benchmark's starting state are outside
// the timer. Run:
//
//	go test ./cmd/certsync -run '^$' -bench ADPass -benchtime 1x
//
// The machine is shared and noisy: read the figures as ratios within one run.
func BenchmarkADPass(b *testing.B) {
	const n = 5000
	start := time.Now()
	w := newADBench(b, domainController(b), n)
	b.Logf("seeded %d AD users and their cloud twins in %s", n, time.Since(start).Round(time.Millisecond))

	incremental := []string{"--incremental"}
	for _, bc := range []struct {
		name string
		args []string
		// warm runs one untimed pass with args first, to set the starting
		// state (publish what an earlier sub-benchmark left undone, set the
		// watermark).
		warm bool
		each func(w *adBench, b *testing.B) // untimed, before each timed pass
		// What each timed pass must report; quiet: no cloud request at all.
		mode                   string
		read, changed, patches int
		quiet                  bool
	}{
		{name: "full-first", each: (*adBench).unpublish,
			mode: "full", read: n, changed: n, patches: n},
		{name: "full-nochange", warm: true,
			mode: "full", read: n},
		{name: "incremental-nochange", args: incremental, warm: true,
			mode: "incremental", quiet: true},
		{name: "incremental-outside-change", args: incremental, warm: true,
			each: func(w *adBench, b *testing.B) {
				w.dc.SetCertificates(b, w.outside, "userCertificate", [][]byte{w.newCert("outside")})
			},
			mode: "incremental", quiet: true},
		{name: "incremental-one-change", args: incremental, warm: true,
			each: func(w *adBench, b *testing.B) {
				w.dc.SetCertificates(b, w.dns[adBenchFirst], "userCertificate", [][]byte{w.newCert(adBenchFirst)})
			},
			mode: "incremental", read: 1, changed: 1, patches: 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := w.on(b)
			var m adBenchMetrics
			b.StopTimer()
			b.ResetTimer()
			if bc.warm {
				w.pass(b, false, bc.args...)
			}
			for range b.N {
				if bc.each != nil {
					bc.each(w, b)
				}
				r := w.pass(b, true, bc.args...)
				if s := r.head.Summary; r.head.Mode != bc.mode || s.UsersRead != bc.read || s.UsersChanged != bc.changed || r.patches != bc.patches || (bc.quiet && r.requests != 0) {
					b.Fatalf("mode %s (%q), %d read, %d changed, %d PATCH, %d cloud requests; want %s, %d read, %d changed, %d PATCH (no cloud request: %v)",
						r.head.Mode, r.head.FullReason, s.UsersRead, s.UsersChanged, r.patches, r.requests,
						bc.mode, bc.read, bc.changed, bc.patches, bc.quiet)
				}
				m.add(r)
			}
			m.report(b)
		})
	}
}

// adBenchFirst is the seeded user whose certificate incremental-one-change
// replaces.
const adBenchFirst = "u0000"

// adBench is the benchmark's users on the shared DC, their cloud twins and
// a configuration as an admin would write it for Active Directory.
type adBench struct {
	*adWorld
	// outside is a user in no benchmark's filter, changed to move the
	// DC's USN without changing anything in scope.
	outside string
}

// newADBench seeds newADWorld's world with n users, each with one
// certificate, and one user outside the filter.
func newADBench(b *testing.B, dc *ldaptest.Samba, n int) *adBench {
	b.Helper()
	people := make([]adPerson, n)
	for i := range people {
		people[i] = adPerson{name: fmt.Sprintf("u%04d", i), certs: 1}
	}
	w := &adBench{adWorld: newADWorld(b, dc, people, "", "")}
	w.outside, _ = dc.AddUser(b, ldaptest.SambaUser{Name: w.dept + "-out", Attributes: map[string][]string{"department": {w.dept + "-outside"}}})
	// Pages of 1000, AD's cap, as an admin of a directory this size sets.
	w.sourceKeys = []string{"pageSize: 1000"}
	w.writeConfig(dc.URL)
	return w
}

// on returns w reporting to b, the running sub-benchmark: the world's
// helpers (newCert) report to the world's TB, and a failure reported to
// the top-level benchmark from a sub-benchmark's goroutine would not stop
// the sub-benchmark.
func (w *adBench) on(b *testing.B) *adBench {
	aw := *w.adWorld
	tw := *aw.world
	tw.t = b
	aw.world = &tw
	return &adBench{adWorld: &aw, outside: w.outside}
}

// unpublish returns the world to before the first pass: no state file, no
// certificateUserIds in the cloud.
func (w *adBench) unpublish(b *testing.B) {
	b.Helper()
	if err := os.RemoveAll(filepath.Join(w.dir, "state")); err != nil {
		b.Fatal(err)
	}
	for _, u := range w.graph.Users() {
		if len(u.CertificateUserIDs) > 0 {
			u.CertificateUserIDs = nil
			w.graph.AddUser(u)
		}
	}
}

// adPass is one `certsync sync` run: its report's head and what it cost.
type adPass struct {
	head     jsonHead
	wall     time.Duration
	rssKiB   int // 0 without GNU time
	requests int // every entry of the emulator's log: HTTP requests and $batch items
	http     int // HTTP requests ($batch envelopes count once)
	patches  int // PATCH operations, top level or in a $batch
}

// pass runs `certsync sync --output json` with args, under GNU time when
// it is installed, and with the benchmark's timer running around the
// process only when timed.
func (w *adBench) pass(b *testing.B, timed bool, args ...string) adPass {
	b.Helper()
	w.graph.ResetRequests()
	argv := append([]string{certsyncBin, "sync", "--config", w.cfg, "--output", "json"}, args...)
	measureRSS := false
	if _, err := os.Stat(gnuTime); err == nil {
		argv = underGNUTime(argv...)
		measureRSS = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if timed {
		b.StartTimer()
	}
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if timed {
		b.StopTimer()
	}
	if err != nil {
		b.Fatalf("certsync sync %v: %v\nstderr:\n%s", args, err, errb.String())
	}
	r := adPass{wall: wall}
	if err := json.Unmarshal(out.Bytes(), &r.head); err != nil {
		b.Fatalf("certsync sync %v: not JSON (%v)\nstderr:\n%s", args, err, errb.String())
	}
	if r.head.Error != "" {
		b.Fatalf("certsync sync %v: the report says %s", args, r.head.Error)
	}
	if measureRSS {
		r.rssKiB = peakRSSKiB(b, errb.String())
	}
	for _, req := range w.graph.Requests() {
		r.requests++
		if !req.InBatch {
			r.http++
		}
		if req.Method == "PATCH" {
			r.patches++
		}
	}
	return r
}

// adBenchMetrics sums the timed passes of one sub-benchmark.
type adBenchMetrics struct {
	passes                                  int
	wall                                    time.Duration
	ldapOps, usersRead, http, items, writes int
	peakKiB                                 int
}

func (m *adBenchMetrics) add(r adPass) {
	m.passes++
	m.wall += r.wall
	m.ldapOps += r.head.Summary.LDAPOperations
	m.usersRead += r.head.Summary.UsersRead
	m.http += r.http
	m.items += r.requests
	m.writes += r.patches
	m.peakKiB = max(m.peakKiB, r.rssKiB)
}

func (m *adBenchMetrics) report(b *testing.B) {
	if m.passes == 0 {
		return
	}
	per := func(v int) float64 { return float64(v) / float64(m.passes) }
	b.ReportMetric(m.wall.Seconds()/float64(m.passes), "wall-s/op")
	b.ReportMetric(per(m.ldapOps), "ldap-ops/op")
	b.ReportMetric(per(m.usersRead), "users-read/op")
	b.ReportMetric(per(m.http), "cloud-requests/op")
	b.ReportMetric(per(m.items), "cloud-ops/op")
	b.ReportMetric(per(m.writes), "cloud-writes/op")
	if m.peakKiB > 0 {
		b.ReportMetric(float64(m.peakKiB)/1024, "peak-MiB")
	}
}
