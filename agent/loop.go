package agent

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// Debounce of change notifications: a pass starts once the directory has
// been quiet for notifyQuiet after a notification, and at the latest
// notifyMaxDelay after the first one, so a burst of changes (a bulk
// import) makes one pass, and a steady trickle still gets passes.
const (
	notifyQuiet    = 500 * time.Millisecond
	notifyMaxDelay = 2 * time.Second
)

// Loop calls pass every interval until ctx ends, and sooner when trigger
// fires (a directory's change notification; nil: never), debounced. A
// failed pass is logged and tried again after a backoff that doubles with
// each failure in a row, from interval up to the larger of interval and
// maxBackoff; triggers do not cut a backoff short. When ctx ends during a
// pass, the pass runs to its end (it gets a context that is not cancelled
// with ctx) and Loop returns nil: stopping the service never cuts a pass
// in half.
func Loop(ctx context.Context, interval, maxBackoff time.Duration, trigger <-chan struct{}, pass func(context.Context) error, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	if maxBackoff < interval {
		maxBackoff = interval
	}
	passCtx := context.WithoutCancel(ctx)
	failures := 0
	for {
		start := time.Now()
		err := pass(passCtx)
		wait := interval
		if err != nil {
			failures++
			wait = backoff(interval, maxBackoff, failures)
			log.Error("pass failed; trying again later", zap.Error(err), zap.Int("failuresInARow", failures), zap.Duration("retryIn", wait))
		} else {
			failures = 0
			log.Info("pass finished", zap.Duration("took", time.Since(start)), zap.Duration("nextIn", wait))
		}
		if ctx.Err() != nil {
			log.Info("stopping: the pass in flight has finished")
			return nil
		}
		listen := trigger
		if failures > 0 {
			listen = nil
		}
		if !waitForPass(ctx, wait, listen) {
			log.Info("stopping between passes")
			return nil
		}
	}
}

// waitForPass waits until the next pass is due: wait has passed, or a
// trigger came and the directory has been quiet since (debounced). false:
// ctx ended.
func waitForPass(ctx context.Context, wait time.Duration, trigger <-chan struct{}) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	case <-trigger:
	}
	deadline := time.NewTimer(notifyMaxDelay)
	defer deadline.Stop()
	for {
		quiet := time.NewTimer(notifyQuiet)
		select {
		case <-ctx.Done():
			quiet.Stop()
			return false
		case <-trigger:
			quiet.Stop()
		case <-quiet.C:
			return true
		case <-deadline.C:
			quiet.Stop()
			return true
		}
	}
}

func backoff(interval, maxBackoff time.Duration, failures int) time.Duration {
	d := interval
	for i := 1; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	if d > maxBackoff {
		d = maxBackoff
	}
	return d
}
