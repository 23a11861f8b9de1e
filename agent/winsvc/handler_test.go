package winsvc

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeSCM plays the service control manager: it sends requests and
// records every status the handler reports, in order.
type fakeSCM struct {
	t      *testing.T
	req    chan Cmd
	status chan Status
	exit   chan uint32
}

func serve(t *testing.T, run RunFunc) *fakeSCM {
	m := &fakeSCM{t: t, req: make(chan Cmd), status: make(chan Status), exit: make(chan uint32, 1)}
	h := &Handler{Run: run, Tick: time.Millisecond}
	go func() { m.exit <- h.Serve(m.req, func(s Status) { m.status <- s }) }()
	return m
}

// next returns the next status that is not a repeated pending report
// (same state, checkpoint grown), failing if the handler exits first.
func (m *fakeSCM) next(prev Status) Status {
	m.t.Helper()
	for {
		select {
		case s := <-m.status:
			if s.State == prev.State && s.State != Running && s.CheckPoint > prev.CheckPoint {
				prev = s
				continue
			}
			return s
		case code := <-m.exit:
			m.t.Fatalf("the handler exited (%d) while a status was awaited after %+v", code, prev)
		case <-time.After(time.Minute):
			m.t.Fatalf("no status after %+v", prev)
		}
	}
}

// send delivers a request while draining the pending reports.
func (m *fakeSCM) send(c Cmd) {
	m.t.Helper()
	for {
		select {
		case m.req <- c:
			return
		case <-m.status:
		case <-time.After(time.Minute):
			m.t.Fatalf("the handler took no request %d", c)
		}
	}
}

// exitCode drains statuses until the handler returns.
func (m *fakeSCM) exitCode() uint32 {
	m.t.Helper()
	for {
		select {
		case code := <-m.exit:
			return code
		case <-m.status:
		case <-time.After(time.Minute):
			m.t.Fatal("the handler did not return")
		}
	}
}

// agentUntilStopped is a RunFunc that starts, then runs until stopped
// and returns ret.
func agentUntilStopped(ret error) RunFunc {
	return func(ctx context.Context, started func()) error {
		started()
		<-ctx.Done()
		return ret
	}
}

func TestHandlerStates(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stopWith Cmd
		ret      error // what the agent returns once stopped
		wantExit uint32
	}{
		{"stop", CmdStop, nil, ExitOK},
		{"shutdown", CmdShutdown, nil, ExitOK},
		{"stopped agent reports the cancellation", CmdStop, context.Canceled, ExitOK},
		{"agent fails while stopping", CmdStop, errors.New("state file: disk full"), ExitFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := serve(t, agentUntilStopped(tc.ret))
			s := m.next(Status{})
			if s.State != StartPending || s.Accepting || s.WaitHint <= 0 {
				t.Fatalf("first status %+v, want start pending, accepting nothing, with a wait hint", s)
			}
			s = m.next(s)
			if s.State != Running || !s.Accepting {
				t.Fatalf("after start: %+v, want running, accepting stop and shutdown", s)
			}
			m.send(CmdInterrogate)
			if got := m.next(Status{}); got != s {
				t.Errorf("interrogate answered %+v, want the current %+v", got, s)
			}
			m.send(CmdOther) // not accepted: ignored
			m.send(tc.stopWith)
			if s = m.next(s); s.State != StopPending || s.Accepting || s.WaitHint <= 0 {
				t.Fatalf("after %d: %+v, want stop pending with a wait hint", tc.stopWith, s)
			}
			if code := m.exitCode(); code != tc.wantExit {
				t.Errorf("exit code %d, want %d", code, tc.wantExit)
			}
		})
	}
}

// A slow stop (the pass in flight finishing) is reported again and again
// with a growing checkpoint, so the manager does not give up on it.
func TestHandlerSlowStopReportsProgress(t *testing.T) {
	release := make(chan struct{})
	m := serve(t, func(ctx context.Context, started func()) error {
		started()
		<-ctx.Done()
		<-release
		return nil
	})
	s := m.next(m.next(Status{}))
	if s.State != Running {
		t.Fatalf("%+v, want running", s)
	}
	m.send(CmdStop)
	var last Status
	for last.CheckPoint < 5 {
		select {
		case st := <-m.status:
			if st.State != StopPending || st.CheckPoint <= last.CheckPoint {
				t.Fatalf("%+v after %+v: want stop pending with a growing checkpoint", st, last)
			}
			last = st
		case <-time.After(time.Minute):
			t.Fatalf("no progress after %+v", last)
		}
	}
	m.send(CmdInterrogate) // a second stop request or interrogation changes nothing
	m.send(CmdStop)
	close(release)
	if code := m.exitCode(); code != ExitOK {
		t.Errorf("exit code %d", code)
	}
}

// An agent that fails before it starts (a bad configuration) never
// reports running, and the service exits with ExitFailed so the manager's
// recovery actions apply.
func TestHandlerFailsAtStart(t *testing.T) {
	m := serve(t, func(context.Context, func()) error { return errors.New("agent.yaml: unknown key") })
	for {
		select {
		case s := <-m.status:
			if s.State != StartPending {
				t.Fatalf("%+v: the agent never started", s)
			}
		case code := <-m.exit:
			if code != ExitFailed {
				t.Fatalf("exit code %d, want %d", code, ExitFailed)
			}
			return
		case <-time.After(time.Minute):
			t.Fatal("the handler did not return")
		}
	}
}

// A stop that arrives while the agent is still starting is honoured, and
// a late "started" does not report running.
func TestHandlerStopWhileStarting(t *testing.T) {
	proceed := make(chan struct{})
	m := serve(t, func(ctx context.Context, started func()) error {
		<-proceed
		started()
		<-ctx.Done()
		return nil
	})
	if s := m.next(Status{}); s.State != StartPending {
		t.Fatalf("%+v", s)
	}
	m.send(CmdShutdown)
	if s := m.next(Status{}); s.State != StopPending {
		t.Fatalf("%+v, want stop pending", s)
	}
	close(proceed)
	for {
		select {
		case s := <-m.status:
			if s.State == Running {
				t.Fatalf("reported running after the stop: %+v", s)
			}
		case code := <-m.exit:
			if code != ExitOK {
				t.Fatalf("exit code %d", code)
			}
			return
		case <-time.After(time.Minute):
			t.Fatal("the handler did not return")
		}
	}
}
