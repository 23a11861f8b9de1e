package agent

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc"
)

// A notification starts a pass long before the interval; a burst of them
// makes one pass.
func TestLoopTriggerIsDebounced(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trigger := make(chan struct{}, 1)
	passes := make(chan time.Time, 16)
	go func() {
		_ = Loop(ctx, time.Hour, time.Hour, trigger, func(context.Context) error {
			passes <- time.Now()
			return nil
		}, zaptest.NewLogger(t))
	}()
	<-passes // the first pass runs at once
	start := time.Now()
	for range 10 {
		select {
		case trigger <- struct{}{}:
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case at := <-passes:
		if d := at.Sub(start); d < notifyQuiet || d > notifyMaxDelay+time.Second {
			t.Fatalf("the triggered pass came %s after the burst began, want between %s and %s", d, notifyQuiet, notifyMaxDelay)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pass within 10s of a notification (the interval is an hour)")
	}
	select {
	case <-passes:
		t.Fatal("a burst of notifications made more than one pass")
	case <-time.After(2 * notifyMaxDelay):
	}
}

// A registration lost with its connection is made again, and each
// registration triggers a pass (changes made meanwhile were not
// notified); a directory without notifications is left to polling.
func TestWatchRegistersAgain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	src := SourceOpener{Name: "dc01", Watch: func(ctx context.Context, ready, changed func()) error {
		ready()
		if calls.Add(1) == 1 {
			changed()
			return errors.New("connection reset by peer")
		}
		<-ctx.Done()
		return nil
	}}
	var triggers atomic.Int32
	r := &Runner{log: zaptest.NewLogger(t)}
	done := make(chan struct{})
	go func() { r.watch(ctx, src, func() { triggers.Add(1) }); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if calls.Load() != 2 || triggers.Load() != 3 {
		t.Fatalf("%d registrations, %d triggers; want 2 registrations (one after the drop) and 3 triggers (2 registrations, 1 change)", calls.Load(), triggers.Load())
	}
	cancel()
	<-done

	none := SourceOpener{Name: "ldap01", Watch: func(context.Context, func(), func()) error { return ldapsrc.ErrNoWatch }}
	finished := make(chan struct{})
	go func() { r.watch(context.Background(), none, func() {}); close(finished) }()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("watch kept trying a directory that offers no notification")
	}
}
