package winsvc

import (
	"context"
	"errors"
	"sync"
	"time"
)

// State is a service's state as the service control manager sees it; Cmd
// is what the manager asks of it. They mirror golang.org/x/sys/windows/svc
// (which builds only on Windows), so the protocol is tested everywhere;
// service_windows.go translates.
type State int

const (
	StartPending State = iota + 1
	Running
	StopPending
)

func (s State) String() string {
	switch s {
	case StartPending:
		return "start pending"
	case Running:
		return "running"
	case StopPending:
		return "stop pending"
	}
	return "unknown"
}

// Cmd is a control request.
type Cmd int

const (
	CmdInterrogate Cmd = iota + 1
	CmdStop
	CmdShutdown
	// CmdOther is any control certsync does not accept (pause, ...): ignored.
	CmdOther
)

// Status is what the handler reports. Accepting is true when Stop and
// Shutdown are accepted (only while running).
type Status struct {
	State      State
	Accepting  bool
	CheckPoint uint32        // grows while a pending state lasts
	WaitHint   time.Duration // how long until the next report, at most
}

// RunFunc runs the agent until ctx ends. It calls started once it runs
// (configuration read, state file locked); it returns nil when stopped.
type RunFunc func(ctx context.Context, started func()) error

// Handler speaks the service control manager's protocol around a RunFunc:
// StartPending until the agent says it started, then Running (accepting
// Stop and Shutdown); on either, StopPending with a growing checkpoint
// every Tick while the pass in flight finishes, so the manager does not
// think the service hung.
type Handler struct {
	Run RunFunc // non-nil
	// Tick is how often a pending state is reported again (default 5s);
	// the wait hint is twice that.
	Tick time.Duration
}

// Exit codes the handler returns (service-specific).
const (
	ExitOK     uint32 = 0
	ExitFailed uint32 = 1 // the agent failed: the manager's recovery actions apply
)

// Serve runs the agent, answering req and telling report each status,
// until the agent returns. It returns the service's exit code: ExitFailed
// when the agent ended with an error other than being stopped.
func (h *Handler) Serve(req <-chan Cmd, report func(Status)) uint32 {
	tick := h.Tick
	if tick <= 0 {
		tick = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, func() { once.Do(func() { close(started) }) }) }()

	cur := Status{State: StartPending, CheckPoint: 1, WaitHint: 2 * tick}
	report(cur)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	stopping := false
	for {
		select {
		case <-started:
			started = nil
			if !stopping {
				cur = Status{State: Running, Accepting: true}
				report(cur)
			}
		case c, ok := <-req:
			switch {
			case !ok:
				req = nil
			case c == CmdInterrogate:
				report(cur)
			case (c == CmdStop || c == CmdShutdown) && !stopping:
				stopping = true
				cancel()
				cur = Status{State: StopPending, CheckPoint: 1, WaitHint: 2 * tick}
				report(cur)
			}
		case <-ticker.C:
			if cur.State != Running {
				cur.CheckPoint++
				report(cur)
			}
		case err := <-done:
			if err == nil || (stopping && errors.Is(err, context.Canceled)) {
				return ExitOK
			}
			return ExitFailed
		}
	}
}
