package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

func TestIncompleteReadChangesNothing(t *testing.T) {
	f := newFixture(t, graphtest.User{Mail: "a@x.test"}, graphtest.User{Mail: "b@x.test"})
	a, wantA := f.user("a@x.test", 1)
	b, wantB := f.user("b@x.test", 1)
	f.src.users = []mapping.SourceUser{a, b}
	f.pass(context.Background())
	if got := f.cloud("b@x.test"); !mapping.SameSet(got, wantB) {
		t.Fatalf("setup: b has %v", got)
	}

	// The directory now fails after the first user: b must not look like
	// a user who lost its certificates, and a's removal must not go either.
	a.Values = nil
	f.src.users = []mapping.SourceUser{a, b}
	f.src.failAt, f.src.readErr = 1, errors.New("connection reset by peer")
	before := f.graph.Writes()
	_, err := f.agent().Plan(context.Background(), PlanOptions{})
	if err == nil || !strings.Contains(err.Error(), "incomplete") || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("want an incomplete-read error naming the cause, got %v", err)
	}
	if f.graph.Writes() != before {
		t.Fatal("an incomplete read led to cloud writes")
	}
	if !mapping.SameSet(f.cloud("a@x.test"), wantA) || !mapping.SameSet(f.cloud("b@x.test"), wantB) {
		t.Fatal("an incomplete read removed values")
	}
}

func TestPendingWriteIsOwnedAfterACrash(t *testing.T) {
	f := newFixture(t, graphtest.User{Mail: "a@x.test", CertificateUserIDs: []string{"X509:<SKI>AA", "X509:<PN>hand@x.test"}})
	a, want := f.user("a@x.test", 1)
	// The last agent recorded its intent to write X509:<SKI>AA and (we
	// pretend) died after the cloud took it, before the state commit; it
	// had also meant to write X509:<SKI>BB, which never reached the cloud.
	err := f.store.Update([]state.Record{{Anchor: a.Anchor, Targets: map[string]state.TargetRecord{
		cloudsink.TargetCertificateUserIDs: {CloudID: f.ids["a@x.test"], Pending: []string{"X509:<SKI>AA", "X509:<SKI>BB"}},
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.src.users = []mapping.SourceUser{a}
	p := f.pass(context.Background())
	tp := slices.Collect(p.Users())[0].Targets[0]
	if !mapping.SameSet(tp.Change.Remove, []string{"X509:<SKI>AA"}) {
		t.Fatalf("the landed pending value must be removed as certsync's own: %+v", tp.Change)
	}
	if got := f.cloud("a@x.test"); !mapping.SameSet(got, append([]string{"X509:<PN>hand@x.test"}, want...)) {
		t.Fatalf("cloud after recovery: %v", got)
	}
	rec, _, err := f.store.Get(a.Anchor)
	if err != nil {
		t.Fatal(err)
	}
	tr := rec.Targets[cloudsink.TargetCertificateUserIDs]
	if len(tr.Pending) != 0 || !mapping.SameSet(tr.Values, want) {
		t.Fatalf("state after recovery: %+v", tr)
	}
}

func TestSyncedUserIsReportedNotWritten(t *testing.T) {
	f := newFixture(t, graphtest.User{Mail: "s@x.test", OnPremisesSyncEnabled: true})
	s, _ := f.user("s@x.test", 1)
	f.src.users = []mapping.SourceUser{s}
	p := f.pass(context.Background())
	if f.graph.Writes() != 0 {
		t.Fatal("a write was sent for a user Graph refuses")
	}
	// Skipped and reported, not a failure: the pass exits 0 for it.
	tp := slices.Collect(p.Users())[0].Targets[0]
	if p.Stats.UsersFailed != 0 || p.Stats.UsersSkipped != 1 || !tp.Skipped || slices.Collect(p.Users())[0].Failed() || !strings.Contains(tp.Problem, "onPremisesSyncEnabled") {
		t.Fatalf("want the refusal reported as skipped: %+v %+v", p.Stats, tp)
	}
	rec, ok, err := f.store.Get(s.Anchor)
	if err != nil || !ok || !strings.Contains(rec.Problem, "onPremisesSyncEnabled") || rec.ProblemAt.IsZero() {
		t.Fatalf("state should remember the problem: %+v %v %v", rec, ok, err)
	}
}

// A user who left the directory and whose cloud account is deleted keeps
// its record: a deleted account can be restored with its values within
// Entra ID's 30 days, and they must still be certsync's to withdraw then.
// Past the retention the record is forgotten.
func TestDepartedUserWithDeletedCloudAccount(t *testing.T) {
	for _, tc := range []struct {
		name    string
		after   time.Duration // between the deletion and the next look
		restore bool
	}{
		{"restored", 29 * 24 * time.Hour, true},
		{"purged", deletedRetention, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, graphtest.User{Mail: "a@x.test"}, graphtest.User{Mail: "b@x.test"})
			clock := time.Now()
			f.now = func() time.Time { return clock }
			a, _ := f.user("a@x.test", 1)
			b, bValues := f.user("b@x.test", 1)
			f.src.users = []mapping.SourceUser{a, b}
			f.pass(context.Background())

			// b leaves the directory and its cloud account is deleted too.
			f.src.users = []mapping.SourceUser{a}
			f.graph.DeleteUser(f.ids["b@x.test"])
			before := f.graph.Writes()
			p := f.pass(context.Background())
			if f.graph.Writes() != before {
				t.Fatal("nothing is left to withdraw, yet certsync wrote")
			}
			if p.Stats.UsersFailed != 0 {
				t.Fatalf("a deleted cloud account is not a failure: %+v", p.Stats)
			}
			rec, ok, err := f.store.Get(b.Anchor)
			tr := rec.Targets[cloudsink.TargetCertificateUserIDs]
			if err != nil || !ok || !slices.Equal(tr.Values, bValues) || !tr.GoneSince.Equal(clock) {
				t.Fatalf("the departed user's record: %+v %v %v; want its values kept, gone since now", rec, ok, err)
			}
			// Values nobody can sign in with do not widen the percent limit.
			if n, err := f.agent().publishedUsers(); err != nil || n != 1 {
				t.Fatalf("published users: %d, %v; want 1 (a's)", n, err)
			}

			clock = clock.Add(tc.after)
			if tc.restore {
				f.graph.RestoreUser(f.ids["b@x.test"])
			}
			f.pass(context.Background())
			_, ok, err = f.store.Get(b.Anchor)
			if err != nil || ok {
				t.Fatalf("after the account came back or its retention ended, the record is still there (%v)", err)
			}
			if tc.restore {
				if got := f.cloud("b@x.test"); len(got) != 0 {
					t.Fatalf("the restored account still holds %v: certsync forgot it owned them", got)
				}
			}
		})
	}
}

func TestGuard(t *testing.T) {
	cases := []struct {
		name               string
		removing, inState  int
		maxDeletes, maxPct int
		tripped            bool
		reasonMentions     string
	}{
		{"under both", 2, 100, 5, 10, false, ""},
		{"over count", 6, 1000, 5, 0, true, "maxDeletes"},
		{"over percent", 11, 100, 0, 10, true, "maxDeletePercent"},
		{"at percent", 10, 100, 0, 10, false, ""},
		{"one user in a tiny directory", 1, 4, 0, 10, false, ""},
		{"two users in a tiny directory", 2, 4, 0, 10, true, "maxDeletePercent"},
		{"limits off", 1000, 1000, 0, 0, false, ""},
	}
	// The percent is of the users certsync publishes for: 100 records of
	// which 10 hold values, 2 of them losing theirs, is 20%.
	if g := judgeRemovals(Safety{MaxDeletePercent: 10}, Stats{UsersRemoving: 2, UsersInState: 100}, 10, nil, nil, nil); !g.Tripped || !strings.Contains(g.Reason, "2 of the 10 users") {
		t.Fatalf("inflated denominator: %+v", g)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := judgeRemovals(Safety{MaxDeletes: tc.maxDeletes, MaxDeletePercent: tc.maxPct}, Stats{UsersRemoving: tc.removing, UsersInState: tc.inState}, tc.inState, nil, nil, nil)
			if g.Tripped != tc.tripped || !strings.Contains(g.Reason, tc.reasonMentions) {
				t.Fatalf("got %+v", g)
			}
		})
	}
}

func TestGuardStopsTheWholePlan(t *testing.T) {
	f := newFixture(t, graphtest.User{Mail: "a@x.test"}, graphtest.User{Mail: "b@x.test"}, graphtest.User{Mail: "c@x.test"})
	a, _ := f.user("a@x.test", 1)
	b, _ := f.user("b@x.test", 1)
	c, _ := f.user("c@x.test", 0)
	f.src.users = []mapping.SourceUser{a, b, c}
	f.pass(context.Background())
	writes := f.graph.Writes()

	f.safety = Safety{MaxDeletes: 1}
	f.src.users = []mapping.SourceUser{c}
	c2, _ := f.user("c@x.test", 1)
	f.src.users = []mapping.SourceUser{c2}
	ag := f.agent()
	p, err := ag.Plan(context.Background(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ag.Apply(context.Background(), p, 0); !errors.Is(err, ErrDeletionLimit) {
		t.Fatalf("want ErrDeletionLimit, got %v", err)
	}
	if f.graph.Writes() != writes {
		t.Fatal("a refused plan wrote to the cloud (not even c's addition may go)")
	}
	last, ok, err := f.store.LastPass()
	if err != nil || !ok || last.Result != "refused" {
		t.Fatalf("last pass: %+v %v %v", last, ok, err)
	}
}

func TestLoopBackoffAndStop(t *testing.T) {
	if got := []time.Duration{backoff(time.Minute, time.Hour, 1), backoff(time.Minute, time.Hour, 2), backoff(time.Minute, time.Hour, 3), backoff(time.Minute, time.Hour, 10)}; got[0] != time.Minute || got[1] != 2*time.Minute || got[2] != 4*time.Minute || got[3] != time.Hour {
		t.Fatalf("backoff: %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	passes := 0
	err := Loop(ctx, 10*time.Millisecond, time.Second, nil, func(pctx context.Context) error {
		passes++
		if passes == 3 {
			cancel()
			// The pass in flight keeps a live context: stopping the service
			// never cuts a pass in half.
			if pctx.Err() != nil {
				t.Error("the pass's context was cancelled with the loop's")
			}
		}
		if passes == 1 {
			return errors.New("first pass fails")
		}
		return nil
	}, nil)
	if err != nil || passes != 3 {
		t.Fatalf("Loop returned %v after %d passes", err, passes)
	}
}

func TestFailedWriteKeepsIntentUnlessRefused(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		keepPending bool
	}{
		{"unavailable: the write may have landed", 503, true},
		{"refused: nothing landed", 400, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, graphtest.User{Mail: "a@x.test"})
			a, want := f.user("a@x.test", 1)
			f.src.users = []mapping.SourceUser{a}
			ag := f.agent()
			p, err := ag.Plan(context.Background(), PlanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			f.graph.Fail(100, tc.status)
			if err := ag.Apply(context.Background(), p, 0); err != nil {
				t.Fatal(err)
			}
			if tp := slices.Collect(p.Users())[0].Targets[0]; tp.Err == nil || tp.Applied {
				t.Fatalf("the write should have failed: %+v", tp)
			}
			rec, _, err := f.store.Get(a.Anchor)
			if err != nil {
				t.Fatal(err)
			}
			tr := rec.Targets[cloudsink.TargetCertificateUserIDs]
			if got := mapping.SameSet(tr.Pending, want); got != tc.keepPending {
				t.Fatalf("pending after a %d: %v (want kept: %v)", tc.status, tr.Pending, tc.keepPending)
			}
			if len(tr.Values) != 0 || rec.Problem == "" {
				t.Fatalf("a failed write must not be recorded as owned, and must be a problem: %+v", rec)
			}
		})
	}
}

func TestRecordFailureKeepsTheMode(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		o    PlanOptions
		want string
	}{{PlanOptions{}, ModeFull}, {PlanOptions{User: "a@x.test"}, ModeUser}} {
		f.agent().RecordFailure(tc.o, errors.New("dc01 unreachable"))
		last, ok, err := f.store.LastPass()
		if err != nil || !ok || last.Mode != tc.want || last.Result != "failed" || last.Error != "dc01 unreachable" {
			t.Fatalf("%+v: last pass %+v %v %v", tc.o, last, ok, err)
		}
	}
}

// A renewal (the old certificate's value out, the new one's in) is not a
// deletion: three users renewing at once pass a limit of one.
func TestGuardIgnoresRenewals(t *testing.T) {
	f := newFixture(t, graphtest.User{Mail: "a@x.test"}, graphtest.User{Mail: "b@x.test"}, graphtest.User{Mail: "c@x.test"})
	var users []mapping.SourceUser
	for _, m := range []string{"a@x.test", "b@x.test", "c@x.test"} {
		u, _ := f.user(m, 1)
		users = append(users, u)
	}
	f.src.users = users
	f.pass(context.Background())
	f.safety = Safety{MaxDeletes: 1}
	var renewed []mapping.SourceUser
	wants := map[string][]string{}
	for _, m := range []string{"a@x.test", "b@x.test", "c@x.test"} {
		u, want := f.user(m, 1)
		renewed = append(renewed, u)
		wants[m] = want
	}
	f.src.users = renewed
	p := f.pass(context.Background())
	if p.Guard.Tripped || p.Stats.ValuesRemoved != 3 || p.Stats.UsersRemoving != 0 {
		t.Fatalf("renewals: guard %+v, stats %+v; want 3 values replaced and no user counted as losing", p.Guard, p.Stats)
	}
	for m, want := range wants {
		if got := f.cloud(m); !slices.Equal(got, want) {
			t.Fatalf("%s: %v, want %v", m, got, want)
		}
	}
}
