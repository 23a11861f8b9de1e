package agent

import (
	"fmt"
	"sync"
	"time"
)

// Liveness tells a watchdog whether Run is making progress: it is alive
// while a pass has finished (or Run started) within its limit.
type Liveness struct {
	limit time.Duration
	now   func() time.Time

	mu   sync.Mutex
	last time.Time // guarded by mu
}

// NewLiveness starts counting at now(); Run is stuck when no pass has
// finished for limit (make it longer than the interval, the longest
// backoff and the longest pass).
func NewLiveness(limit time.Duration, now func() time.Time) *Liveness {
	return &Liveness{limit: limit, now: now, last: now()}
}

// Observe notes a finished pass (RunnerConfig.Observe).
func (l *Liveness) Observe(o PassOutcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = o.Started.Add(o.Took)
}

// Alive says whether a pass finished within the limit.
func (l *Liveness) Alive() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.now().Sub(l.last) < l.limit
}

// String is the outcome in one line, for a service manager's status.
func (o PassOutcome) String() string {
	s := fmt.Sprintf("last pass %s at %s: %s in %s", o.Mode, o.Started.Add(o.Took).UTC().Format(time.RFC3339), o.Result(), o.Took.Round(time.Millisecond))
	if p := o.Plan; p != nil {
		s += fmt.Sprintf(", %d users read, %d changed (+%d/-%d values), %d failed", p.Stats.UsersRead, p.Stats.UsersChanged, p.Stats.ValuesAdded, p.Stats.ValuesRemoved, p.Stats.UsersFailed)
	}
	if o.Err != nil {
		s += ": " + o.Err.Error()
	}
	return s
}
