package metrics

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/certsync/certsync/agent"
)

// Failure reasons of certsync_failures_total.
const (
	ReasonDirectory     = "directory"      // a directory could not be read (one per directory)
	ReasonDeletionLimit = "deletion_limit" // the pass was refused by the deletion limit
	ReasonPass          = "pass"           // the pass failed otherwise (state file, cloud lookups, ...)
	ReasonUser          = "user"           // a user-level problem: conflict, same user twice, ...
	ReasonWrite         = "write"          // a target's lookup or write failed for a user
)

// Metrics holds the agent's metrics and its health. Safe for concurrent
// use: passes report from the loop, the sinks from their workers, the
// HTTP server reads.
type Metrics struct {
	reg *prometheus.Registry // non-nil; this process's only registry

	passes        *prometheus.CounterVec   // mode, result
	passDuration  *prometheus.HistogramVec // mode
	usersRead     prometheus.Counter
	valuesAdded   prometheus.Counter
	valuesRemoved prometheus.Counter
	failures      *prometheus.CounterVec // reason
	rejected      *prometheus.CounterVec // code
	retryWaits    *prometheus.CounterVec // service
	retrySeconds  *prometheus.CounterVec // service
	lastSuccess   prometheus.Gauge
	lastPass      prometheus.Gauge
	expiring      prometheus.Gauge

	mu sync.Mutex // guards the fields below
	// last is the outcome of the last pass; lastOK when the last
	// successful one finished. Zero before the first.
	last   *passHealth
	lastOK time.Time
}

type passHealth struct {
	finished time.Time
	result   string
	err      string
}

// New makes the metrics in a registry of their own, with the Go runtime
// and process collectors beside them.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) prometheus.Collector { reg.MustRegister(c); return c }
	m := &Metrics{reg: reg}
	m.passes = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certsync_passes_total", Help: "Passes run, by mode (full, incremental) and result (ok, changes, partial, refused, failed).",
	}, []string{"mode", "result"})).(*prometheus.CounterVec)
	m.passDuration = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "certsync_pass_duration_seconds", Help: "How long a pass took, by mode.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
	}, []string{"mode"})).(*prometheus.HistogramVec)
	m.usersRead = f(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "certsync_users_read_total", Help: "Users read from the directories.",
	})).(prometheus.Counter)
	m.valuesAdded = f(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "certsync_values_added_total", Help: "Values added in the cloud (bindings, certificates), as planned by applied passes.",
	})).(prometheus.Counter)
	m.valuesRemoved = f(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "certsync_values_removed_total", Help: "Values certsync removed from the cloud, as planned by applied passes.",
	})).(prometheus.Counter)
	m.failures = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certsync_failures_total", Help: "Failures by reason: directory, deletion_limit, pass (whole pass), user, write (per user).",
	}, []string{"reason"})).(*prometheus.CounterVec)
	m.rejected = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certsync_certificates_rejected_total", Help: "Certificates rejected by the policy, by code, among the users passes reported.",
	}, []string{"code"})).(*prometheus.CounterVec)
	m.retryWaits = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certsync_throttle_waits_total", Help: "Waits before retrying a request the cloud throttled (429) or could not serve (503, 504), by service.",
	}, []string{"service"})).(*prometheus.CounterVec)
	m.retrySeconds = f(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certsync_throttle_wait_seconds_total", Help: "Time spent waiting before those retries, by service.",
	}, []string{"service"})).(*prometheus.CounterVec)
	m.lastSuccess = f(prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "certsync_last_success_timestamp_seconds", Help: "When the last successful pass finished (Unix time); 0 before the first.",
	})).(prometheus.Gauge)
	m.lastPass = f(prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "certsync_last_pass_timestamp_seconds", Help: "When the last pass finished, successful or not (Unix time).",
	})).(prometheus.Gauge)
	m.expiring = f(prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "certsync_certificates_expiring_soon", Help: "Accepted certificates that expire within 30 days, as of the last full read of every directory.",
	})).(prometheus.Gauge)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Known label values start at 0, so rate() and absent() work from the
	// first scrape.
	for _, mode := range []string{agent.ModeFull, agent.ModeIncremental} {
		for _, res := range []string{agent.ResultOK, agent.ResultChanges, agent.ResultPartial, agent.ResultRefused, agent.ResultFailed} {
			m.passes.WithLabelValues(mode, res)
		}
	}
	for _, r := range []string{ReasonDirectory, ReasonDeletionLimit, ReasonPass, ReasonUser, ReasonWrite} {
		m.failures.WithLabelValues(r)
	}
	return m
}

// Registry is where the metrics live.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// RetryWait returns the function a cloud sink calls before each retry wait
// (cloudsink's OnRetryWait), counting it for service ("graph", "exchange").
func (m *Metrics) RetryWait(service string) func(time.Duration) {
	n, s := m.retryWaits.WithLabelValues(service), m.retrySeconds.WithLabelValues(service)
	return func(d time.Duration) {
		n.Inc()
		s.Add(d.Seconds())
	}
}

// ObservePass counts one pass of the agent (agent.RunnerConfig.Observe).
func (m *Metrics) ObservePass(o agent.PassOutcome) {
	result := o.Result()
	finished := o.Started.Add(o.Took)
	m.passes.WithLabelValues(o.Mode, result).Inc()
	m.passDuration.WithLabelValues(o.Mode).Observe(o.Took.Seconds())
	m.lastPass.Set(float64(finished.UnixMilli()) / 1000)
	switch result {
	case agent.ResultRefused:
		m.failures.WithLabelValues(ReasonDeletionLimit).Inc()
	case agent.ResultFailed:
		if o.Plan == nil && errors.Is(o.Err, agent.ErrSourceFailed) {
			m.failures.WithLabelValues(ReasonDirectory).Inc() // every directory failed
		} else {
			m.failures.WithLabelValues(ReasonPass).Inc()
		}
	}
	if p := o.Plan; p != nil {
		m.observePlan(p, result)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = &passHealth{finished: finished, result: result}
	if o.Err != nil {
		m.last.err = o.Err.Error()
		return
	}
	m.lastOK = finished
	m.lastSuccess.Set(float64(finished.UnixMilli()) / 1000)
}

func (m *Metrics) observePlan(p *agent.Plan, result string) {
	s := p.Stats
	m.usersRead.Add(float64(s.UsersRead))
	if result != agent.ResultRefused && result != agent.ResultFailed {
		m.valuesAdded.Add(float64(s.ValuesAdded))
		m.valuesRemoved.Add(float64(s.ValuesRemoved))
	}
	allRead := p.Err() == nil
	for _, src := range p.Sources {
		if src.Err != nil {
			m.failures.WithLabelValues(ReasonDirectory).Inc()
		}
	}
	if p.Mode == agent.ModeFull && allRead {
		m.expiring.Set(float64(s.CertificatesExpiringSoon))
	}
	for u := range p.Users() {
		for _, r := range u.Rejected {
			m.rejected.WithLabelValues(r.Code).Inc()
		}
		if !u.Failed() {
			continue
		}
		reason := ReasonWrite
		if u.Problem != "" {
			reason = ReasonUser
		}
		m.failures.WithLabelValues(reason).Inc()
	}
}
