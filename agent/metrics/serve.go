package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Health is /healthz's verdict.
type Health struct {
	OK     bool
	Status string // one line for people
}

// Health says whether a pass succeeded within maxAge of now and the last
// pass did not fail: before the first pass has finished, or when the last
// success is older than maxAge, or the last pass failed, it is not OK.
func (m *Metrics) Health(now time.Time, maxAge time.Duration) Health {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.last == nil:
		return Health{false, "no pass has finished yet"}
	case m.last.err != "":
		return Health{false, fmt.Sprintf("the last pass (%s, finished %s) failed: %s", m.last.result, m.last.finished.UTC().Format(time.RFC3339), m.last.err)}
	case now.Sub(m.lastOK) > maxAge:
		return Health{false, fmt.Sprintf("the last successful pass finished %s, more than %s ago", m.lastOK.UTC().Format(time.RFC3339), maxAge)}
	}
	return Health{true, fmt.Sprintf("ok: the last pass (%s) finished %s", m.last.result, m.lastOK.UTC().Format(time.RFC3339))}
}

// Handler serves /metrics (Prometheus text format) and /healthz (200 when
// Health is OK, else 503, with its status line).
func (m *Metrics) Handler(maxAge time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		h := m.Health(time.Now(), maxAge)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !h.OK {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, h.Status)
	})
	return mux
}

// HealthMaxAge is how old the last successful pass may be for /healthz
// when the agent passes every interval: three intervals (failed passes
// back off), and never less than 5 minutes.
func HealthMaxAge(interval time.Duration) time.Duration {
	return max(3*interval, 5*time.Minute)
}

// Listen binds addr now, so that a bad address fails the start of the
// agent, and serves h on it until ctx ends.
func Listen(ctx context.Context, addr string, h http.Handler, log *zap.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: --metrics-listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics: serving stopped", zap.String("addr", ln.Addr().String()), zap.Error(err))
		}
	}()
	return ln.Addr(), nil
}
