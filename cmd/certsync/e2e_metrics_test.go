package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/certsync/certsync/mapping/pkitest"
)

// TestMetricsThroughTheBinary runs `certsync run --metrics-listen` against
// slapd and the Graph emulator and scrapes it as Prometheus would: the
// first pass, a change picked up by an incremental pass under throttling,
// then a directory that goes away, each visible in /metrics and /healthz.
func TestMetricsThroughTheBinary(t *testing.T) {
	w := newWorld(t, basicPeople(), "schedule: {interval: 1s}\n")
	// alice also holds a certificate that expires in 15 days.
	soon, _, err := w.issuing.Issue(pkitest.LeafOptions{CommonName: "alice", Email: "alice@example.test",
		NotBefore: time.Now().AddDate(-1, 0, 15), NotAfter: time.Now().AddDate(0, 0, 15)})
	if err != nil {
		t.Fatal(err)
	}
	w.modify("alice", func(r *ldap.ModifyRequest) { r.Add("userCertificate;binary", []string{string(soon.Raw)}) })

	addr := freeAddr(t)
	cmd := exec.Command(certsyncBin, "run", "--config", w.cfg, "--metrics-listen", addr)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + addr

	// First pass: a full read that publishes alice (2), bob (2), carol (1).
	s := waitScrape(t, base, &errb, func(s scrape) bool { return s.code == http.StatusOK })
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"certsync_passes_total", map[string]string{"mode": "full", "result": "changes"}, 1},
		{"certsync_values_added_total", nil, 5},
		{"certsync_values_removed_total", nil, 0},
		{"certsync_users_read_total", nil, 5},
		{"certsync_certificates_expiring_soon", nil, 1},
		{"certsync_certificates_rejected_total", map[string]string{"code": "expired"}, 1},
		{"certsync_failures_total", map[string]string{"reason": "directory"}, 0},
		{"certsync_throttle_waits_total", map[string]string{"service": "graph"}, 0},
	}
	for _, c := range checks {
		if got := s.value(t, c.name, c.labels); got != c.want {
			t.Errorf("after the first pass, %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if last := s.value(t, "certsync_last_success_timestamp_seconds", nil); time.Since(time.Unix(int64(last), 0)) > time.Minute {
		t.Errorf("certsync_last_success_timestamp_seconds = %v: not a recent time", last)
	}
	if n := s.count(t, "certsync_pass_duration_seconds", map[string]string{"mode": "full"}); n != 1 {
		t.Errorf("certsync_pass_duration_seconds{mode=full} counts %d passes, want 1", n)
	}

	// The next passes read only what changed, and find nothing.
	s = waitScrape(t, base, &errb, func(s scrape) bool {
		return s.value(t, "certsync_passes_total", map[string]string{"mode": "incremental", "result": "ok"}) >= 1
	})
	if got := s.value(t, "certsync_values_added_total", nil); got != 5 {
		t.Errorf("no-change passes added values: certsync_values_added_total = %v", got)
	}

	// A new certificate for dave, published by an incremental pass while
	// Graph throttles.
	w.graph.Throttle(2, time.Second)
	w.modify("dave", func(r *ldap.ModifyRequest) {
		r.Add("userCertificate;binary", []string{string(w.leaf("dave", time.Now().Add(-time.Hour), false))})
	})
	s = waitScrape(t, base, &errb, func(s scrape) bool { return s.value(t, "certsync_values_added_total", nil) == 6 })
	if got := s.sum(t, "certsync_passes_total", map[string]string{"mode": "incremental", "result": "changes"}); got != 1 {
		t.Errorf("incremental passes with changes: %v, want 1", got)
	}
	if got := s.value(t, "certsync_throttle_waits_total", map[string]string{"service": "graph"}); got < 1 {
		t.Errorf("certsync_throttle_waits_total{service=graph} = %v after Graph throttled the pass", got)
	}
	if got := s.value(t, "certsync_throttle_wait_seconds_total", map[string]string{"service": "graph"}); got < 1 {
		t.Errorf("certsync_throttle_wait_seconds_total{service=graph} = %v, want at least the 1s Retry-After", got)
	}

	// The directory goes away: the next passes fail, /healthz says so.
	killSlapd(t, w.slapd.Dir)
	s = waitScrape(t, base, &errb, func(s scrape) bool { return s.code == http.StatusServiceUnavailable })
	if !strings.Contains(s.health, "failed") || !strings.Contains(s.health, w.slapd.URL[len("ldap://"):]) {
		t.Errorf("/healthz says %q, want the failed pass and the directory's address", s.health)
	}
	if got := s.value(t, "certsync_failures_total", map[string]string{"reason": "directory"}); got < 1 {
		t.Errorf("certsync_failures_total{reason=directory} = %v after slapd stopped", got)
	}
	if got := s.sum(t, "certsync_passes_total", map[string]string{"result": "failed"}); got < 1 {
		t.Errorf("failed passes: %v, want at least 1", got)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent exit after SIGTERM: %v\n%s", err, errb.String())
	}
}

// TestMetricsListenRefusesABadAddress: a bad --metrics-listen stops the
// agent at once, naming the address.
func TestMetricsListenRefusesABadAddress(t *testing.T) {
	w := newWorld(t, nil, "")
	code, _, errOut := w.run("run", "--metrics-listen", "127.0.0.1:99999")
	if code != 1 || !strings.Contains(errOut, "--metrics-listen 127.0.0.1:99999") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// scrape is one look at /healthz and /metrics.
type scrape struct {
	code     int    // /healthz's status
	health   string // /healthz's body
	families map[string]*dto.MetricFamily
}

func scrapeOnce(base string) (scrape, error) {
	var s scrape
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		return s, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.code, s.health = resp.StatusCode, strings.TrimSpace(string(body))
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	s.families, err = p.TextToMetricFamilies(resp.Body)
	return s, err
}

// waitScrape scrapes until ok says so (a minute at most).
func waitScrape(t *testing.T, base string, agentLog *bytes.Buffer, ok func(scrape) bool) scrape {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s, err := scrapeOnce(base)
		if err == nil && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("scraping %s: the awaited state did not come (last error %v, /healthz %d %q)\nagent log:\n%s", base, err, s.code, s.health, agentLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// matching returns the samples of name whose labels include labels.
func (s scrape) matching(t *testing.T, name string, labels map[string]string) []*dto.Metric {
	t.Helper()
	f, ok := s.families[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	var out []*dto.Metric
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

// value is the one sample of name with labels (0 when absent).
func (s scrape) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	ms := s.matching(t, name, labels)
	if len(ms) > 1 {
		t.Fatalf("%s%v matches %d samples, want one", name, labels, len(ms))
	}
	if len(ms) == 0 {
		return 0
	}
	return sampleValue(ms[0])
}

// sum adds the samples of name whose labels include labels.
func (s scrape) sum(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	total := 0.0
	for _, m := range s.matching(t, name, labels) {
		total += sampleValue(m)
	}
	return total
}

// count is a histogram's observation count.
func (s scrape) count(t *testing.T, name string, labels map[string]string) uint64 {
	t.Helper()
	ms := s.matching(t, name, labels)
	if len(ms) != 1 || ms[0].GetHistogram() == nil {
		t.Fatalf("%s%v: want one histogram, got %d samples", name, labels, len(ms))
	}
	return ms[0].GetHistogram().GetSampleCount()
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}

// freeAddr is a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// killSlapd stops the test's slapd, found by its configuration under dir,
// before the test ends (its cleanup then finds it gone).
func killSlapd(t *testing.T, dir string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(dir)) || !bytes.Contains(b, []byte("slapd")) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		proc, err := os.FindProcess(pid)
		if err == nil {
			err = proc.Kill()
		}
		if err != nil {
			t.Fatalf("stopping slapd (pid %d): %v", pid, err)
		}
		return
	}
	t.Fatalf("no slapd process runs with a configuration under %s", dir)
}
