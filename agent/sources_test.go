package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// twoSources makes a fixture reading "test" (f.src) then "lab".
func twoSources(t *testing.T, cloud ...graphtest.User) (*fixture, *listSource) {
	f := newFixture(t, cloud...)
	lab := &listSource{}
	f.more = []NamedSource{{Name: "lab", Source: lab}}
	return f, lab
}

func TestFullReadWithdrawsOnlyItsOwnUsers(t *testing.T) {
	ctx := context.Background()
	f, lab := twoSources(t, graphtest.User{Mail: "a@x.test"}, graphtest.User{Mail: "b@x.test"}, graphtest.User{Mail: "c@x.test"})
	a, _ := f.user("a@x.test", 1)
	b, wantB := f.user("b@x.test", 1)
	c, wantC := f.user("c@x.test", 1)
	f.src.users, lab.users = []mapping.SourceUser{a, c}, []mapping.SourceUser{b}
	p := f.pass(ctx)
	for u := range p.Users() {
		want := map[string]string{"a@x.test": "test", "b@x.test": "lab", "c@x.test": "test"}[u.Name]
		if u.Source != want {
			t.Errorf("%s planned under source %q, want %q", u.Name, u.Source, want)
		}
	}
	if rec, _, _ := f.store.Get(b.Anchor); rec.Source != "lab" {
		t.Fatalf("b's record names source %q, want lab", rec.Source)
	}
	// c's record predates several sources: it names none, and belongs to
	// the first.
	rec, _, err := f.store.Get(c.Anchor)
	if err != nil {
		t.Fatal(err)
	}
	rec.Source = ""
	if err := f.store.Update([]state.Record{rec}, nil); err != nil {
		t.Fatal(err)
	}

	// The first directory now returns nobody at all: a and c leave, b stays.
	f.src.users = nil
	p = f.pass(ctx)
	if got := f.cloud("b@x.test"); !mapping.SameSet(got, wantB) {
		t.Fatalf("lab's user lost its values to the other directory's read: %v", got)
	}
	if got := f.cloud("a@x.test"); len(got) != 0 {
		t.Fatalf("a left its directory but keeps %v", got)
	}
	if got := f.cloud("c@x.test"); len(got) != 0 {
		t.Fatalf("c (a record from before several sources) left the first directory but keeps %v (want %v withdrawn)", got, wantC)
	}
	if p.Stats.UsersRemoving != 2 {
		t.Fatalf("%d users losing values, want 2", p.Stats.UsersRemoving)
	}
}

func TestFailedSourceVoidsOnlyItsPart(t *testing.T) {
	ctx := context.Background()
	f, lab := twoSources(t, graphtest.User{Mail: "a@x.test"}, graphtest.User{Mail: "b@x.test"})
	f.src.tracked, lab.tracked = true, true
	f.incr = true
	a, _ := f.user("a@x.test", 1)
	b, wantB := f.user("b@x.test", 1)
	f.src.users, lab.users = []mapping.SourceUser{a}, []mapping.SourceUser{b}
	f.pass(ctx)

	// a gets a new certificate; lab fails after reading b with no
	// certificates left: b must not lose anything.
	a2, wantA2 := f.user("a@x.test", 1)
	a2.Anchor = a.Anchor
	f.src.users, f.src.mark, f.src.changed = []mapping.SourceUser{a2}, 1, map[string]bool{a.Anchor: true}
	bGone := b
	bGone.Values = nil
	lab.users, lab.mark, lab.changed = []mapping.SourceUser{bGone, b}, 1, map[string]bool{b.Anchor: true}
	lab.failAt, lab.readErr = 1, errors.New("connection reset by peer")
	ag := f.agent()
	p, err := ag.Plan(ctx, PlanOptions{Incremental: true})
	if err != nil {
		t.Fatalf("one directory failing must not void the plan: %v", err)
	}
	if err := ag.Apply(ctx, p, 0); err != nil {
		t.Fatal(err)
	}
	if pe := p.Err(); pe == nil || !errors.Is(pe, ErrSourceFailed) || !strings.Contains(pe.Error(), "lab") || !strings.Contains(pe.Error(), "connection reset") {
		t.Fatalf("plan error %v; want the failed directory named with its cause", pe)
	}
	if got := f.cloud("a@x.test"); !mapping.SameSet(got, wantA2) {
		t.Fatalf("the readable directory's change was not applied: %v, want %v", got, wantA2)
	}
	if got := f.cloud("b@x.test"); !mapping.SameSet(got, wantB) {
		t.Fatalf("a failed read changed its users: %v, want %v", got, wantB)
	}
	for u := range p.Users() {
		if u.Source == "lab" {
			t.Fatalf("the failed directory's user %s is in the plan", u.Name)
		}
	}
	// Its watermark stays; the other's advances.
	f.src.mark, lab.mark, lab.failAt = 2, 2, 0
	lab.changed = map[string]bool{}
	f.src.changed = map[string]bool{}
	f.pass(ctx)
	if string(lab.lastSeen) != "wm-0" || string(f.src.lastSeen) != "wm-1" {
		t.Fatalf("after the failure lab read from %q (want wm-0), test from %q (want wm-1)", lab.lastSeen, f.src.lastSeen)
	}
	var last state.PassSummary
	if lp, ok, err := f.store.LastPass(); err != nil || !ok {
		t.Fatal(err)
	} else {
		last = lp
	}
	if len(last.Sources) != 2 || last.Sources[1].Name != "lab" {
		t.Fatalf("pass summary sources %+v", last.Sources)
	}
}

func TestEveryFailedSourceMeansNoPlan(t *testing.T) {
	f, lab := twoSources(t)
	user := mapping.SourceUser{Anchor: "x", Attributes: map[string]string{"mail": "x@x.test"}}
	f.src.users, lab.users = []mapping.SourceUser{user}, []mapping.SourceUser{user}
	// failAt 0 fails before the first user.
	f.src.failAt, f.src.readErr = 0, errors.New("dc01 unreachable")
	lab.failAt, lab.readErr = 0, errors.New("ldap01 unreachable")
	_, err := f.agent().Plan(context.Background(), PlanOptions{})
	if err == nil || !strings.Contains(err.Error(), "dc01 unreachable") || !strings.Contains(err.Error(), "ldap01 unreachable") {
		t.Fatalf("want no plan and both causes named, got %v", err)
	}
}

// conflictOf is the problem of the user's Graph target ("" when none).
func conflictOf(p *Plan, name, source string) *TargetPlan {
	for u := range p.Users() {
		if u.Name == name && u.Source == source {
			return u.Targets[0]
		}
	}
	return nil
}

func TestTwoUsersOneAccountIsAConflict(t *testing.T) {
	ctx := context.Background()
	f, lab := twoSources(t, graphtest.User{Mail: "a@x.test"})
	a, _ := f.user("a@x.test", 1)
	twin, _ := f.user("a@x.test", 1)
	twin.Anchor = "anchor-twin"
	f.src.users, lab.users = []mapping.SourceUser{a}, []mapping.SourceUser{twin}
	p := f.pass(ctx)
	for _, src := range []string{"test", "lab"} {
		tp := conflictOf(p, "a@x.test", src)
		if tp == nil || !strings.HasPrefix(tp.Problem, "conflict:") || tp.Skipped || tp.Change.Changed() {
			t.Fatalf("the user in %s: %+v; want a conflict, nothing to write", src, tp)
		}
	}
	if p.Stats.UsersFailed != 2 || f.graph.Writes() != 0 || len(f.cloud("a@x.test")) != 0 {
		t.Fatalf("%d failed, %d writes, cloud %v; want both failed and no write", p.Stats.UsersFailed, f.graph.Writes(), f.cloud("a@x.test"))
	}
}

// published makes a fixture whose first directory's a@x.test is
// published, and a second user of that mail with another anchor (with
// the bindings it should get).
func published(t *testing.T) (f *fixture, lab *listSource, wantA []string, other mapping.SourceUser, wantOther []string) {
	f, lab = twoSources(t, graphtest.User{Mail: "a@x.test"})
	a, wantA := f.user("a@x.test", 1)
	f.src.users = []mapping.SourceUser{a}
	f.pass(context.Background())
	other, wantOther = f.user("a@x.test", 1)
	other.Anchor = "anchor-other"
	return f, lab, wantA, other, wantOther
}

func TestNewcomerOnAClaimedAccountIsAConflict(t *testing.T) {
	ctx := context.Background()
	f, lab, wantA, twin, _ := published(t)
	// A second directory now has a user with the same mail: certsync
	// publishes for a already, so the newcomer is the conflict; a keeps
	// its values, and stays unchanged (no lookup at all).
	lab.users = []mapping.SourceUser{twin}
	writes := f.graph.Writes()
	p := f.pass(ctx)
	tp := conflictOf(p, "a@x.test", "lab")
	if tp == nil || !strings.HasPrefix(tp.Problem, "conflict:") || !strings.Contains(tp.Problem, "directory test") {
		t.Fatalf("the newcomer: %+v; want a conflict naming the user already published", tp)
	}
	if f.graph.Writes() != writes || !mapping.SameSet(f.cloud("a@x.test"), wantA) {
		t.Fatalf("the account changed: %d writes, %v", f.graph.Writes()-writes, f.cloud("a@x.test"))
	}
}

func TestDepartedUserLeavesTheAccountFirst(t *testing.T) {
	ctx := context.Background()
	f, lab, _, moved, wantMoved := published(t)
	// The user moved to the other directory with a new anchor (a forest
	// migration): the old one's values go first, the new one waits one
	// pass, as skipped, not failed.
	f.src.users, lab.users = nil, []mapping.SourceUser{moved}
	p := f.pass(ctx)
	tp := conflictOf(p, "a@x.test", "lab")
	if tp == nil || !tp.Skipped || !strings.HasPrefix(tp.Problem, "waits:") || p.Stats.UsersFailed != 0 {
		t.Fatalf("the newcomer: %+v (%d failed); want it to wait, not fail", tp, p.Stats.UsersFailed)
	}
	if got := f.cloud("a@x.test"); len(got) != 0 {
		t.Fatalf("the departed user's values are still there: %v", got)
	}
	f.pass(ctx)
	if got := f.cloud("a@x.test"); !mapping.SameSet(got, wantMoved) {
		t.Fatalf("next pass: %v, want the moved user's %v", got, wantMoved)
	}
	if rec, _, _ := f.store.Get(moved.Anchor); rec.Targets[cloudsink.TargetCertificateUserIDs].CloudID == "" || rec.Source != "lab" {
		t.Fatalf("the moved user's record: %+v", rec)
	}
}

func TestSameObjectFromTwoSourcesIsReportedOnce(t *testing.T) {
	ctx := context.Background()
	f, lab := twoSources(t, graphtest.User{Mail: "a@x.test"})
	a, want := f.user("a@x.test", 1)
	f.src.users, lab.users = []mapping.SourceUser{a}, []mapping.SourceUser{a}
	p := f.pass(ctx)
	var dup *UserPlan
	for u := range p.Users() {
		if u.Source == "lab" {
			dup = u
		}
	}
	if dup == nil || !strings.Contains(dup.Problem, "read from directory test") || !dup.Failed() {
		t.Fatalf("the second copy: %+v; want a problem naming the overlap", dup)
	}
	if got := f.cloud("a@x.test"); !mapping.SameSet(got, want) {
		t.Fatalf("the first copy was not published: %v", got)
	}
}

// unreadableState fails every record read, as a damaged state file would.
type unreadableState struct{ Store }

func (unreadableState) Get(string) (state.Record, bool, error) {
	return state.Record{}, false, errors.New("state: page 7 checksum mismatch")
}

func (u unreadableState) Records(anchors []string, fn func(int, state.Record, bool, error)) {
	for i, a := range anchors {
		r, ok, err := u.Get(a)
		fn(i, r, ok, err)
	}
}

// A state that cannot be read is the pass's failure, not a directory's:
// no directory's part may be planned without it.
func TestUnreadableStateIsNoPlan(t *testing.T) {
	f, lab := twoSources(t, graphtest.User{Mail: "a@x.test"})
	a, _ := f.user("a@x.test", 1)
	f.src.users, lab.users = []mapping.SourceUser{a}, nil
	ag, err := New(Options{Sources: []NamedSource{{Name: "test", Source: f.src}, {Name: "lab", Source: lab}},
		Store: unreadableState{f.store}, Targets: f.agent().targets})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ag.Plan(context.Background(), PlanOptions{})
	if err == nil || errors.Is(err, ErrSourceFailed) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("plan %v, error %v; want no plan and the state's error, not a directory's", p, err)
	}
}
