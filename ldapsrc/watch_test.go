package ldapsrc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/ldapsrc"
)

// watched runs Watch in the background and hands back its readiness, its
// notifications and its end.
type watched struct {
	ready   chan struct{}
	changed chan struct{}
	done    chan error
	stop    context.CancelFunc
}

func startWatch(t *testing.T, cfg ldapsrc.Config) *watched {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watched{ready: make(chan struct{}, 8), changed: make(chan struct{}, 1024), done: make(chan error, 1), stop: cancel}
	go func() {
		w.done <- ldapsrc.Watch(ctx, cfg, zaptest.NewLogger(t),
			func() { w.ready <- struct{}{} }, func() { w.changed <- struct{}{} })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-w.done:
			if err != nil {
				t.Errorf("Watch ended with %v after its context was cancelled, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Watch did not end within 10s of its context's end")
		}
	})
	select {
	case <-w.ready:
	case err := <-w.done:
		t.Fatalf("Watch ended before it was registered: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Watch was not registered within 30s")
	}
	return w
}

// expect waits for a notification after a change, and none before.
func (w *watched) expect(t *testing.T, what string, change func()) time.Duration {
	t.Helper()
	for len(w.changed) > 0 {
		<-w.changed
	}
	start := time.Now()
	change()
	select {
	case <-w.changed:
		return time.Since(start)
	case err := <-w.done:
		t.Fatalf("%s: Watch ended: %v", what, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no notification within 30s", what)
	}
	return 0
}

func TestWatchSlapd(t *testing.T) {
	sl, srv := trackSlapd(t)
	w := startWatch(t, srv.config())
	// Nothing changed: the refresh phase's entries are not changes.
	select {
	case <-w.changed:
		t.Fatal("a notification without a change (the initial content must not count)")
	case <-time.After(time.Second):
	}
	admin := sl.Admin(t)
	took := w.expect(t, "a certificate added", func() {
		req := ldap.NewModifyRequest("uid=p10,"+peopleDN, nil)
		req.Replace("userCertificate;binary", []string{string(newCert(t, "p10"))})
		if err := admin.Modify(req); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("slapd notified a change in %s", took)
}

func TestWatchSamba(t *testing.T) {
	dc := sharedSamba(t)
	added, _ := adUsers(t, dc, "watch", 2)
	w := startWatch(t, adConfig(dc, "watch", ldapsrc.TrackUSN))
	took := w.expect(t, "a certificate replaced", func() {
		dc.SetCertificates(t, added[0].DN, "userCertificate", [][]byte{newCert(t, "watch-new")})
	})
	t.Logf("Samba notified a change in %s", took)
}

func TestWatchOffOrUnoffered(t *testing.T) {
	_, srv := trackSlapd(t)
	cfg := srv.config()
	cfg.ChangeNotification = ldapsrc.WatchOff
	err := ldapsrc.Watch(context.Background(), cfg, zaptest.NewLogger(t), nil, func() {})
	if !errors.Is(err, ldapsrc.ErrNoWatch) {
		t.Fatalf("changeNotification off: %v, want ErrNoWatch", err)
	}
}
