package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping"
)

// Many small passes cannot strip what one pass may not: the users that
// lost values in the last 24 hours count towards the limit; a pass past
// the window, or one the admin accepted, starts afresh.
func TestGuardCountsRemovalsAcrossPasses(t *testing.T) {
	mails := []string{"a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test", "f@x.test", "g@x.test", "h@x.test", "i@x.test", "j@x.test"}
	var cloud []graphtest.User
	for _, m := range mails {
		cloud = append(cloud, graphtest.User{Mail: m})
	}
	f := newFixture(t, cloud...)
	clock := time.Now()
	f.now = func() time.Time { return clock }
	var users []mapping.SourceUser
	for _, m := range mails {
		u, _ := f.user(m, 1)
		users = append(users, u)
	}
	f.src.users = users
	f.pass(context.Background())
	f.safety = Safety{MaxDeletes: 3}

	strip := func(i int) { users[i].Values = nil }
	plan := func() *Plan {
		t.Helper()
		p, err := f.agent().Plan(context.Background(), PlanOptions{})
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		return p
	}

	strip(0)
	strip(1)
	f.pass(context.Background()) // 2 users: under the limit
	clock = clock.Add(time.Hour)
	strip(2)
	strip(3)
	p := plan() // 2 more within the window: 4 > 3
	if !p.Guard.Tripped || !strings.Contains(p.Guard.Reason, "4 users would lose certificates (2 in this pass, 2 in the passes of the last 24h0m0s)") {
		t.Fatalf("second small pass within the window: guard %+v", p.Guard)
	}
	if err := f.agent().Apply(context.Background(), p, 0); !errors.Is(err, ErrDeletionLimit) {
		t.Fatalf("apply: %v, want ErrDeletionLimit", err)
	}

	clock = clock.Add(removalWindow) // the first pass leaves the window
	if p := plan(); p.Guard.Tripped {
		t.Fatalf("after the window: guard %+v", p.Guard)
	}

	// An accepted pass: later passes do not count what it removed.
	clock = clock.Add(-removalWindow + time.Minute)
	p = plan()
	if !p.Guard.Tripped {
		t.Fatalf("within the window again: guard %+v", p.Guard)
	}
	// --allow-deletes=N is a bound: accepting fewer users than the pass
	// strips applies nothing and says how many it would strip.
	if err := f.agent().Apply(context.Background(), p, p.Guard.UsersRemoving-1); !errors.Is(err, ErrDeletionLimit) || !strings.Contains(err.Error(), "--allow-deletes=2 to accept") {
		t.Fatalf("apply with --allow-deletes=%d: %v, want ErrDeletionLimit naming 2", p.Guard.UsersRemoving-1, err)
	}
	if got := f.cloud("c@x.test"); len(got) == 0 {
		t.Fatal("a refused pass removed c's values")
	}
	if err := f.agent().Apply(context.Background(), p, p.Guard.UsersRemoving); err != nil {
		t.Fatalf("apply with --allow-deletes=%d: %v", p.Guard.UsersRemoving, err)
	}
	strip(4)
	if p := plan(); p.Guard.Tripped || p.Guard.UsersRemovedBefore != 0 {
		t.Fatalf("after an accepted pass: guard %+v", p.Guard)
	}
}
