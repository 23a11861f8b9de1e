package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// trackedFixture has three users with one certificate each, all in the
// cloud, and a source that tracks changes.
func trackedFixture(t *testing.T) (*fixture, []mapping.SourceUser) {
	t.Helper()
	mails := []string{"a@x.test", "b@x.test", "c@x.test"}
	var cloud []graphtest.User
	for _, m := range mails {
		cloud = append(cloud, graphtest.User{Mail: m, UserPrincipalName: m})
	}
	f := newFixture(t, cloud...)
	f.incr = true
	f.track = Tracking{Fingerprint: "fp-1"}
	f.src.tracked = true
	var users []mapping.SourceUser
	for _, m := range mails {
		u, _ := f.user(m, 1)
		users = append(users, u)
	}
	f.src.users = users
	return f, users
}

func TestIncrementalPasses(t *testing.T) {
	ctx := context.Background()
	f, users := trackedFixture(t)

	p := f.pass(ctx)
	if p.Mode != ModeFull || !strings.Contains(p.FullReason, "no change-tracking watermark") {
		t.Fatalf("first pass: mode %s, reason %q; want a full read because there is no watermark", p.Mode, p.FullReason)
	}
	if f.graph.Writes() != 3 {
		t.Fatalf("first pass wrote %d users, want 3", f.graph.Writes())
	}

	// Nothing changed: the read is incremental, sees nobody, writes nothing
	// and withdraws nothing from the users it did not see.
	f.src.mark, f.src.changed = 1, map[string]bool{}
	f.graph.ResetRequests()
	p = f.pass(ctx)
	if p.Mode != ModeIncremental || string(f.src.lastSeen) != "wm-0" {
		t.Fatalf("second pass: mode %s, since %q; want incremental from wm-0", p.Mode, f.src.lastSeen)
	}
	if p.Stats.UsersRead != 0 || len(f.graph.Requests()) != 0 {
		t.Fatalf("no-change pass read %d users and sent %d cloud requests; want none", p.Stats.UsersRead, len(f.graph.Requests()))
	}
	for _, u := range users {
		if len(f.cloud(u.Attr("mail"))) != 1 {
			t.Fatalf("%s lost its value in an incremental pass", u.Attr("mail"))
		}
	}

	// One user's certificate is replaced: exactly that user is read and
	// written.
	b, want := f.user("b@x.test", 1)
	b.Anchor = users[1].Anchor
	f.src.users[1] = b
	f.src.mark, f.src.changed = 2, map[string]bool{b.Anchor: true}
	before := f.graph.Writes()
	p = f.pass(ctx)
	if writes := f.graph.Writes() - before; string(f.src.lastSeen) != "wm-1" || p.Stats.UsersRead != 1 || writes != 1 {
		t.Fatalf("change pass: since %q, read %d, writes %d; want wm-1, 1, 1", f.src.lastSeen, p.Stats.UsersRead, writes)
	}
	if got := f.cloud("b@x.test"); !mapping.SameSet(got, want) {
		t.Fatalf("b's cloud values = %v, want %v", got, want)
	}

	// A user the directory reports deleted loses what certsync published.
	f.src.mark, f.src.changed, f.src.deleted = 3, map[string]bool{}, []string{users[2].Anchor}
	f.src.users = f.src.users[:2]
	p = f.pass(ctx)
	if p.Mode != ModeIncremental || len(f.cloud("c@x.test")) != 0 {
		t.Fatalf("deleted user: mode %s, cloud values %v; want incremental and none", p.Mode, f.cloud("c@x.test"))
	}
	if _, ok, _ := f.store.Get(users[2].Anchor); ok {
		t.Fatal("the deleted user's state record was kept")
	}
}

func TestIncrementalFallsBackToFull(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		change func(f *fixture, clock *time.Time)
		reason string
	}{
		{"fingerprint changed", func(f *fixture, _ *time.Time) { f.track.Fingerprint = "fp-2" }, "changed since the last full read"},
		{"full interval passed", func(f *fixture, clock *time.Time) {
			f.track.FullInterval = time.Hour
			*clock = clock.Add(time.Hour)
		}, "fullInterval"},
		{"a certificate expired", func(_ *fixture, clock *time.Time) { *clock = clock.AddDate(2, 0, 0) }, "expired or became valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := trackedFixture(t)
			clock := time.Now()
			f.now = func() time.Time { return clock }
			f.pass(ctx)
			f.src.mark, f.src.changed = 1, map[string]bool{}
			// Unchanged, one minute later: incremental.
			clock = clock.Add(time.Minute)
			if p := f.pass(ctx); p.Mode != ModeIncremental {
				t.Fatalf("mode %s (%s), want incremental", p.Mode, p.FullReason)
			}
			tc.change(f, &clock)
			f.src.mark = 2
			p := f.pass(ctx)
			if p.Mode != ModeFull || f.src.lastSeen != nil || !strings.Contains(p.FullReason, tc.reason) {
				t.Fatalf("mode %s, since %q, reason %q; want a full read because %q", p.Mode, f.src.lastSeen, p.FullReason, tc.reason)
			}
		})
	}
}

// A pass whose writes failed for a passing reason keeps the old
// watermark, so the next incremental read returns those users again.
func TestWatermarkHeldBackByRetryableFailure(t *testing.T) {
	ctx := context.Background()
	f, users := trackedFixture(t)
	f.pass(ctx)

	b, want := f.user("b@x.test", 1)
	b.Anchor = users[1].Anchor
	f.src.users[1] = b
	f.src.mark, f.src.changed = 1, map[string]bool{b.Anchor: true}
	f.graph.Fail(100, 503)
	p := f.pass(ctx)
	if p.Stats.UsersFailed != 1 {
		t.Fatalf("failed users = %d, want 1", p.Stats.UsersFailed)
	}
	f.graph.Fail(0, 0)

	f.src.mark = 2
	p = f.pass(ctx)
	if string(f.src.lastSeen) != "wm-0" {
		t.Fatalf("after a failed write the next read started from %q, want the old watermark wm-0", f.src.lastSeen)
	}
	if got := f.cloud("b@x.test"); !mapping.SameSet(got, want) || p.Stats.UsersFailed != 0 {
		t.Fatalf("retry: cloud %v, failed %d; want %v, 0", got, p.Stats.UsersFailed, want)
	}
	f.src.mark = 3
	f.pass(ctx)
	if string(f.src.lastSeen) != "wm-2" {
		t.Fatalf("after a clean pass the read started from %q, want wm-2", f.src.lastSeen)
	}
}

// A plan stopped by the deletion guard commits nothing, watermark
// included: the removals it found must be seen again.
func TestWatermarkHeldBackByGuard(t *testing.T) {
	ctx := context.Background()
	f, users := trackedFixture(t)
	f.pass(ctx)
	f.safety = Safety{MaxDeletes: 1}
	f.src.mark, f.src.changed = 1, map[string]bool{}
	f.src.deleted = []string{users[0].Anchor, users[1].Anchor}
	a := f.agent()
	p, err := a.Plan(ctx, PlanOptions{Incremental: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, p, 0); err == nil {
		t.Fatal("Apply passed a plan over the deletion limit")
	}
	f.src.mark = 2
	if _, err := a.Plan(ctx, PlanOptions{Incremental: true}); err != nil {
		t.Fatal(err)
	}
	if string(f.src.lastSeen) != "wm-0" {
		t.Fatalf("after a refused plan the read started from %q, want wm-0", f.src.lastSeen)
	}
}

func TestNextReview(t *testing.T) {
	ca, err := pkitest.NewRootCA("Review CA")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	soon, _, err := ca.Issue(pkitest.LeafOptions{CommonName: "soon", NotAfter: now.Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	later, _, err := ca.Issue(pkitest.LeafOptions{CommonName: "later", NotAfter: now.Add(96 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ev := mapping.Evaluation{Accepted: []mapping.Certificate{{Cert: later}, {Cert: soon}}}
	if got := nextReview(ev, now); !got.Equal(soon.NotAfter.Add(time.Second)) {
		t.Fatalf("nextReview = %v, want just after %v", got, soon.NotAfter)
	}
	starting := now.Add(24 * time.Hour)
	ev.Rejected = []mapping.Rejection{{Code: mapping.RejectNotYetValid, NotBefore: starting}, {Code: mapping.RejectExpired, NotBefore: now.Add(time.Hour)}}
	if got := nextReview(ev, now); !got.Equal(starting) {
		t.Fatalf("nextReview with a certificate starting tomorrow = %v, want %v", got, starting)
	}
	if got := nextReview(mapping.Evaluation{}, now); !got.IsZero() {
		t.Fatalf("nextReview of nothing = %v, want zero", got)
	}
}
