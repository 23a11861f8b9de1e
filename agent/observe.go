package agent

import (
	"errors"
	"time"

	"github.com/certsync/certsync/mapping"
)

// ExpiringWithin is how far ahead Stats.CertificatesExpiringSoon looks.
const ExpiringWithin = 30 * 24 * time.Hour

// PassOutcome is what Run tells RunnerConfig.Observe after each pass.
type PassOutcome struct {
	// Mode is the plan's mode, or the mode asked for when no plan was made.
	Mode    string
	Started time.Time
	Took    time.Duration
	Plan    *Plan // nil when the pass failed before a plan was made
	Err     error // the pass's error, as Pass returned it
}

// Pass results, as recorded in the state file's last-pass summary.
const (
	ResultOK      = "ok"      // nothing to change, nothing failed
	ResultChanges = "changes" // changes applied, nothing failed
	ResultPartial = "partial" // a directory or some users failed; the rest was applied
	ResultRefused = "refused" // the deletion limit: nothing applied
	ResultFailed  = "failed"  // no plan, or applying it failed
)

// Result classifies the outcome as the state file's summary does.
func (o PassOutcome) Result() string {
	switch {
	case errors.Is(o.Err, ErrDeletionLimit):
		return ResultRefused
	case o.Plan == nil:
		return ResultFailed
	case errors.Is(o.Err, ErrSourceFailed):
		return ResultPartial
	case o.Err != nil:
		return ResultFailed
	case o.Plan.Stats.UsersFailed > 0:
		return ResultPartial
	case o.Plan.Stats.UsersChanged > 0:
		return ResultChanges
	}
	return ResultOK
}

// expiringSoon counts ev's accepted certificates that expire within
// ExpiringWithin of now.
func expiringSoon(ev mapping.Evaluation, now time.Time) int {
	n := 0
	for _, c := range ev.Accepted {
		if c.Cert.NotAfter.Before(now.Add(ExpiringWithin)) {
			n++
		}
	}
	return n
}

// observe tells RunnerConfig.Observe about one of Run's passes.
func (r *Runner) observe(plan *Plan, err error, reconcile bool, started time.Time) {
	if r.cfg.Observe == nil {
		return
	}
	o := PassOutcome{Mode: ModeIncremental, Started: started, Took: time.Since(started), Plan: plan, Err: err}
	switch {
	case plan != nil:
		o.Mode = plan.Mode
	case reconcile:
		o.Mode = ModeFull
	}
	r.cfg.Observe(o)
}
