//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkFullPass measures one full certsync pass over 10,000 users in a
// real slapd, publishing to the Graph emulator, through the real binary:
// wall time and the process's peak RSS, next to the floor of a raw
// `ldapsearch` read of the same entries. Run:
//
//	go test ./cmd/certsync -run '^$' -bench FullPass -benchtime 1x
//
// Figures are ratios within one run: the machine is shared and noisy.
func BenchmarkFullPass(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) { benchFullPass(b, n) })
	}
}

func benchFullPass(b *testing.B, n int) {
	people := make([]person, n)
	for i := range people {
		people[i] = person{uid: fmt.Sprintf("u%06d", i), certs: 1, inCloud: true}
	}
	if _, err := os.Stat(gnuTime); err != nil {
		b.Skipf("%s is needed to measure peak memory: apt-get install time", gnuTime)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w := newWorld(b, people, "")
		ldapWall := w.ldapsearch(b)
		b.StartTimer()
		wall, cpu, rss := timedSync(b, w)
		b.StopTimer()
		if got := w.graph.Writes(); got != n {
			b.Fatalf("pass wrote %d users, want %d", got, n)
		}
		// A second pass over the unchanged directory: reads only.
		noChange, noChangeCPU, rss2 := timedSync(b, w)
		if got := w.graph.Writes(); got != n {
			b.Fatalf("the unchanged pass wrote %d more", got-n)
		}
		b.ReportMetric(noChangeCPU.Seconds(), "nochange-cpu-s")
		b.ReportMetric(wall.Seconds(), "pass-s")
		b.ReportMetric(cpu.Seconds(), "pass-cpu-s")
		b.ReportMetric(float64(rss)/1024, "peak-MiB")
		b.ReportMetric(ldapWall.Seconds(), "ldapsearch-s")
		b.ReportMetric(wall.Seconds()/ldapWall.Seconds(), "pass/ldapsearch")
		b.ReportMetric(noChange.Seconds(), "nochange-s")
		b.ReportMetric(noChange.Seconds()/ldapWall.Seconds(), "nochange/ldapsearch")
		b.ReportMetric(float64(rss2)/1024, "nochange-peak-MiB")
	}
}

// timedSync runs one `certsync sync` under GNU time and returns its wall
// time, CPU time and peak RSS in KiB. The rusage Go gets for a child it
// started is no good for memory: Linux carries the parent's high-water mark
// across exec, and Go starts children on a shared address space, so the
// child would report this test process's own size.
func timedSync(b *testing.B, w *world) (wall, cpu time.Duration, maxRSSKiB int) {
	b.Helper()
	argv := underGNUTime(certsyncBin, "sync", "--config", w.cfg, "--output", "json")
	cmd := exec.Command(argv[0], argv[1:]...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("sync: %v\n%s", err, errb.String())
	}
	wall = time.Since(start)
	cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return wall, cpu, peakRSSKiB(b, errb.String())
}

// gnuTime is Debian's `time` package (apt-get install time).
const gnuTime = "/usr/bin/time"

// rssMarker starts GNU time's line on stderr, among certsync's own log.
const rssMarker = "certsync-maxrss="

// underGNUTime makes argv run under GNU time, which reports its peak RSS.
func underGNUTime(argv ...string) []string {
	return append([]string{gnuTime, "-f", rssMarker + "%M"}, argv...)
}

// peakRSSKiB finds GNU time's report in a child's stderr.
func peakRSSKiB(b *testing.B, stderr string) int {
	b.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		if v, ok := strings.CutPrefix(line, rssMarker); ok {
			if kib, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && kib > 0 {
				return kib
			}
		}
	}
	b.Fatalf("no peak RSS from %s:\n%s", gnuTime, stderr)
	return 0
}

// ldapsearch times the raw read certsync's pass can never beat: the same
// filter and attributes, paged, over StartTLS, output discarded.
func (w *world) ldapsearch(b *testing.B) time.Duration {
	b.Helper()
	cmd := exec.Command("ldapsearch", "-LLL", "-x", "-ZZ", "-H", w.slapd.URL, "-D", w.slapd.AdminDN, "-w", w.slapd.AdminPassword,
		"-b", w.slapd.BaseDN, "-E", "pr=500/noprompt", e2eFilter, "entryUUID", "mail", "uid", "userCertificate;binary", "userSMIMECertificate")
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+w.slapd.CAFile)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("ldapsearch: %v\n%s", err, errb.String())
	}
	return time.Since(start)
}
