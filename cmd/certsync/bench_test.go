//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"syscall"
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
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w := newWorld(b, people, "")
		ldapWall := w.ldapsearch(b)
		b.StartTimer()
		start := time.Now()
		cmd := exec.Command(certsyncBin, "sync", "--config", w.cfg, "--output", "json")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			b.Fatalf("sync: %v\n%s", err, errb.String())
		}
		wall := time.Since(start)
		b.StopTimer()
		passCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
		if got := w.graph.Writes(); got != n {
			b.Fatalf("pass wrote %d users, want %d", got, n)
		}
		// A second pass over the unchanged directory: reads only.
		start = time.Now()
		cmd = exec.Command(certsyncBin, "sync", "--config", w.cfg, "--output", "json")
		if outb, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("second sync: %v\n%s", err, outb)
		}
		noChange := time.Since(start)
		rss2 := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
		if got := w.graph.Writes(); got != n {
			b.Fatalf("the unchanged pass wrote %d more", got-n)
		}
		b.ReportMetric((cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(), "nochange-cpu-s")
		b.ReportMetric(wall.Seconds(), "pass-s")
		b.ReportMetric(passCPU.Seconds(), "pass-cpu-s")
		b.ReportMetric(float64(rss)/1024, "peak-MiB")
		b.ReportMetric(ldapWall.Seconds(), "ldapsearch-s")
		b.ReportMetric(wall.Seconds()/ldapWall.Seconds(), "pass/ldapsearch")
		b.ReportMetric(noChange.Seconds(), "nochange-s")
		b.ReportMetric(noChange.Seconds()/ldapWall.Seconds(), "nochange/ldapsearch")
		b.ReportMetric(float64(rss2)/1024, "nochange-peak-MiB")
	}
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
