package agent

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// Loop calls pass every interval until ctx ends. A failed pass is logged
// and tried again after a backoff that doubles with each failure in a row,
// from interval up to the larger of interval and maxBackoff. When ctx ends
// during a pass, the pass runs to its end (it gets a context that is not
// cancelled with ctx) and Loop returns nil: stopping the service never cuts
// a pass in half.
func Loop(ctx context.Context, interval, maxBackoff time.Duration, pass func(context.Context) error, log *zap.Logger) error {
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
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			log.Info("stopping between passes")
			return nil
		case <-t.C:
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
