package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/certsync/certsync/agent"
)

func TestObservePass(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	srcErr := fmt.Errorf("agent: %w: directory ad: refused", agent.ErrSourceFailed)
	limitErr := fmt.Errorf("agent: %w: too many", agent.ErrDeletionLimit)
	failedUser := &agent.UserPlan{Name: "bob", Problem: "conflict: two directory users match one account"}
	failedWrite := &agent.UserPlan{Name: "carol", Targets: []*agent.TargetPlan{{Target: "graph.certificateUserIds", Err: errors.New("503")}}}
	tests := []struct {
		name       string
		outcome    agent.PassOutcome
		result     string
		reasons    map[string]float64
		healthy    bool
		healthText string
	}{
		{"changes", agent.PassOutcome{Mode: agent.ModeFull, Plan: &agent.Plan{Mode: agent.ModeFull, Stats: agent.Stats{UsersChanged: 2, ValuesAdded: 3}}},
			agent.ResultChanges, nil, true, "ok: the last pass (changes)"},
		{"nothing", agent.PassOutcome{Mode: agent.ModeIncremental, Plan: &agent.Plan{Mode: agent.ModeIncremental}},
			agent.ResultOK, nil, true, "ok"},
		{"users failed", agent.PassOutcome{Mode: agent.ModeFull, Plan: (&agent.Plan{Mode: agent.ModeFull, Stats: agent.Stats{UsersFailed: 2}}).SetUsers(failedUser, failedWrite)},
			agent.ResultPartial, map[string]float64{ReasonUser: 1, ReasonWrite: 1}, true, "ok: the last pass (partial)"},
		{"one directory failed", agent.PassOutcome{Mode: agent.ModeFull, Err: srcErr, Plan: &agent.Plan{Mode: agent.ModeFull, Sources: []agent.SourceReport{{Name: "ad", Err: errors.New("refused")}, {Name: "ldap"}}}},
			agent.ResultPartial, map[string]float64{ReasonDirectory: 1}, false, "directory ad: refused"},
		{"every directory failed", agent.PassOutcome{Mode: agent.ModeIncremental, Err: srcErr},
			agent.ResultFailed, map[string]float64{ReasonDirectory: 1}, false, "the last pass (failed"},
		{"deletion limit", agent.PassOutcome{Mode: agent.ModeFull, Err: limitErr, Plan: &agent.Plan{Mode: agent.ModeFull}},
			agent.ResultRefused, map[string]float64{ReasonDeletionLimit: 1}, false, "too many"},
		{"state file", agent.PassOutcome{Mode: agent.ModeFull, Err: errors.New("state: locked")},
			agent.ResultFailed, map[string]float64{ReasonPass: 1}, false, "state: locked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			tt.outcome.Started, tt.outcome.Took = t0, 2*time.Second
			if got := tt.outcome.Result(); got != tt.result {
				t.Fatalf("Result() = %s, want %s", got, tt.result)
			}
			m.ObservePass(tt.outcome)
			if got := testutil.ToFloat64(m.passes.WithLabelValues(tt.outcome.Mode, tt.result)); got != 1 {
				t.Errorf("certsync_passes_total{mode=%s,result=%s} = %v, want 1", tt.outcome.Mode, tt.result, got)
			}
			for _, r := range []string{ReasonDirectory, ReasonDeletionLimit, ReasonPass, ReasonUser, ReasonWrite} {
				if got := testutil.ToFloat64(m.failures.WithLabelValues(r)); got != tt.reasons[r] {
					t.Errorf("certsync_failures_total{reason=%s} = %v, want %v", r, got, tt.reasons[r])
				}
			}
			h := m.Health(t0.Add(time.Minute), 5*time.Minute)
			if h.OK != tt.healthy || !strings.Contains(h.Status, tt.healthText) {
				t.Errorf("Health = %+v, want ok %v with %q", h, tt.healthy, tt.healthText)
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	t0 := time.Now()
	ok := agent.PassOutcome{Mode: agent.ModeFull, Started: t0.Add(-10 * time.Minute), Took: time.Second, Plan: &agent.Plan{Mode: agent.ModeFull}}
	recent := ok
	recent.Started = t0
	tests := []struct {
		name   string
		passes []agent.PassOutcome
		code   int
		says   string
	}{
		{"before the first pass", nil, http.StatusServiceUnavailable, "no pass has finished yet"},
		{"a recent success", []agent.PassOutcome{recent}, http.StatusOK, "ok: the last pass (ok)"},
		{"success too long ago", []agent.PassOutcome{ok}, http.StatusServiceUnavailable, "more than 5m0s ago"},
		{"success, then a failure", []agent.PassOutcome{recent, {Mode: agent.ModeIncremental, Started: t0, Err: errors.New("state: locked")}}, http.StatusServiceUnavailable, "failed: state: locked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			for _, p := range tt.passes {
				m.ObservePass(p)
			}
			srv := httptest.NewServer(m.Handler(5 * time.Minute))
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.says) {
				t.Errorf("/healthz: %d %q, want %d with %q", resp.StatusCode, body, tt.code, tt.says)
			}
		})
	}
}

func TestRetryWait(t *testing.T) {
	m := New()
	wait := m.RetryWait("exchange")
	wait(2 * time.Second)
	wait(500 * time.Millisecond)
	if n := testutil.ToFloat64(m.retryWaits.WithLabelValues("exchange")); n != 2 {
		t.Errorf("certsync_throttle_waits_total{service=exchange} = %v, want 2", n)
	}
	if s := testutil.ToFloat64(m.retrySeconds.WithLabelValues("exchange")); s != 2.5 {
		t.Errorf("certsync_throttle_wait_seconds_total{service=exchange} = %v, want 2.5", s)
	}
}
