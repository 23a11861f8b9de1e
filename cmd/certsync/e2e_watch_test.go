package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// These tests run `certsync run` with a one-hour interval: a change that
// reaches the cloud within seconds can only have come through the
// directory's change notification.

// lockedBuffer is the agent's stderr, read while it is written.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// agentProcess is `certsync run` in the background, logging at info.
type agentProcess struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

func startAgent(t testing.TB, w *world) *agentProcess {
	t.Helper()
	w.replaceInConfig("log: {level: warn, format: json}", "log: {level: info, format: json}\nschedule: {interval: 1h}")
	a := &agentProcess{cmd: exec.Command(certsyncBin, "run", "--config", w.cfg), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	a.cmd.Stderr = a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(30 * time.Second):
			_ = a.cmd.Process.Kill()
			t.Error("the agent did not stop within 30s of SIGTERM")
		}
	})
	return a
}

// passes are the agent's pass summaries so far.
func (a *agentProcess) passes(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(a.stderr.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "pass summary" {
			out = append(out, m)
		}
	}
	return out
}

// waitFor polls cond until it holds or limit passes.
func (a *agentProcess) waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s; agent log:\n%s", what, limit, a.stderr.String())
		}
		select {
		case err := <-a.done:
			t.Fatalf("%s: the agent exited (%v):\n%s", what, err, a.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return time.Since(start)
}

// changeLatencies makes n certificate changes one after another and
// returns, for each, the time from the directory write to the cloud
// holding its binding. change makes change i and returns the binding the
// cloud must then hold; holds reports whether it does.
func changeLatencies(t testing.TB, a *agentProcess, n int, change func(i int) string, holds func(binding string) bool) []time.Duration {
	t.Helper()
	var out []time.Duration
	for i := range n {
		want := change(i)
		out = append(out, a.waitFor(t, fmt.Sprintf("change %d of %d", i+1, n), 30*time.Second, func() bool { return holds(want) }))
	}
	return out
}

// slapdChanges replaces alice's certificate, on a slapd world.
func slapdChanges(t testing.TB, w *world) (func(int) string, func(string) bool) {
	change := func(int) string {
		der := w.leaf("alice", time.Now().Add(-time.Minute), false)
		w.modify("alice", func(r *ldap.ModifyRequest) { r.Replace("userCertificate;binary", []string{string(der)}) })
		return skiBinding(t, der)
	}
	holds := func(b string) bool { return slices.Contains(w.cloudValues("alice"), b) }
	return change, holds
}

// adChanges replaces ann's certificate, on the shared DC.
func adChanges(t testing.TB, w *adWorld) (func(int) string, func(string) bool) {
	change := func(int) string {
		der := w.newCert("ann")
		w.dc.SetCertificates(t, w.dns["ann"], "userCertificate", [][]byte{der})
		return skiBinding(t, der)
	}
	holds := func(b string) bool {
		u, ok := w.graph.User(w.cloudIDs["ann"])
		return ok && slices.Contains(u.CertificateUserIDs, b)
	}
	return change, holds
}

// touchOutOfScope changes an object outside the filter (the Users
// container): AD notifies per naming context, so this makes a pass that
// reads no user, whose cost it measures.
func touchOutOfScope(t testing.TB, w *adWorld, a *agentProcess) {
	t.Helper()
	before := len(idleOperations(a.passes(t)))
	req := ldap.NewModifyRequest("CN=Users,"+w.dc.BaseDN, nil)
	req.Replace("description", []string{fmt.Sprintf("touched by certsync's tests at %s", time.Now().Format(time.RFC3339Nano))})
	if err := w.dc.Admin(t).Modify(req); err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, "a pass after an out-of-scope change", 30*time.Second, func() bool { return len(idleOperations(a.passes(t))) > before })
}

func skiBinding(t testing.TB, der []byte) string {
	t.Helper()
	return skiValues(t, der)[0]
}

// idleOperations are the LDAP operations of the passes that read no user.
func idleOperations(passes []map[string]any) []int {
	var ops []int
	for _, p := range passes {
		if p["usersRead"] == float64(0) {
			ops = append(ops, int(p["ldapOperations"].(float64)))
		}
	}
	return ops
}

func TestRunPublishesAChangeWithinSeconds(t *testing.T) {
	t.Run("slapd", func(t *testing.T) {
		w := newWorld(t, basicPeople(), "")
		a := startAgent(t, w)
		a.waitFor(t, "the first pass", time.Minute, func() bool { return w.graph.Writes() >= 3 })
		change, holds := slapdChanges(t, w)
		for i, d := range changeLatencies(t, a, 3, change, holds) {
			t.Logf("change %d reached the cloud in %s", i+1, d)
		}
		checkIdleCost(t, a)
	})
	t.Run("samba", func(t *testing.T) {
		w := newADWorld(t, domainController(t), []adPerson{{name: "ann", certs: 1}, {name: "ben", certs: 1}}, "", "")
		a := startAgent(t, w.world)
		a.waitFor(t, "the first pass", time.Minute, func() bool { return w.graph.Writes() >= 2 })
		change, holds := adChanges(t, w)
		for i, d := range changeLatencies(t, a, 3, change, holds) {
			t.Logf("change %d reached the cloud in %s", i+1, d)
		}
		touchOutOfScope(t, w, a)
		checkIdleCost(t, a)
	})
}

// checkIdleCost: a notification for a change that concerns no user in
// scope (or a registration) costs an incremental pass of a few LDAP
// operations, never a full read.
func checkIdleCost(t *testing.T, a *agentProcess) {
	t.Helper()
	passes := a.passes(t)
	if len(passes) < 2 {
		t.Fatalf("%d pass summaries logged, want the first pass and the triggered ones", len(passes))
	}
	for _, p := range passes[1:] {
		if p["mode"] != "incremental" {
			t.Errorf("a triggered pass read everything: %v", p)
		}
	}
	for _, ops := range idleOperations(passes) {
		if ops > 5 {
			t.Errorf("a pass that read no user cost %d LDAP operations, want a few", ops)
		}
	}
}

// BenchmarkChangeLatency measures change-to-cloud latency of `certsync
// run` over 50 certificate changes on slapd and on the Samba DC (one at a
// time, each waited for), and the LDAP operations of passes that read no
// user. Run with -benchtime 1x.
func BenchmarkChangeLatency(b *testing.B) {
	const changes = 50
	report := func(b *testing.B, a *agentProcess, ds []time.Duration) {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		p50, p99 := ds[len(ds)/2], ds[(len(ds)*99+99)/100-1]
		b.ReportMetric(p50.Seconds(), "p50-s")
		b.ReportMetric(p99.Seconds(), "p99-s")
		b.ReportMetric(ds[len(ds)-1].Seconds(), "max-s")
		if ops := idleOperations(a.passes(b)); len(ops) > 0 {
			b.ReportMetric(float64(slices.Max(ops)), "idle-pass-ldap-ops-max")
		}
		b.Logf("%d changes: p50 %s, p99 %s, max %s", len(ds), p50, p99, ds[len(ds)-1])
	}
	b.Run("slapd", func(b *testing.B) {
		for b.Loop() {
			w := newWorld(b, basicPeople(), "")
			a := startAgent(b, w)
			a.waitFor(b, "the first pass", time.Minute, func() bool { return w.graph.Writes() >= 3 })
			change, holds := slapdChanges(b, w)
			report(b, a, changeLatencies(b, a, changes, change, holds))
		}
	})
	b.Run("samba", func(b *testing.B) {
		for b.Loop() {
			w := newADWorld(b, domainController(b), []adPerson{{name: "ann", certs: 1}}, "", "")
			a := startAgent(b, w.world)
			a.waitFor(b, "the first pass", time.Minute, func() bool { return w.graph.Writes() >= 1 })
			change, holds := adChanges(b, w)
			ds := changeLatencies(b, a, changes, change, holds)
			touchOutOfScope(b, w, a)
			report(b, a, ds)
		}
	})
}
