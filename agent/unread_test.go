package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping"
)

// A value the directory gave but certsync did not read (too large) is not
// a certificate that left: the user's published values stay, and the
// plan names the user, the attribute and the size.
func TestUnreadValueRemovesNothing(t *testing.T) {
	mails := []string{"a@x.test", "b@x.test", "c@x.test"}
	var cloud []graphtest.User
	for _, m := range mails {
		cloud = append(cloud, graphtest.User{Mail: m})
	}
	f := newFixture(t, cloud...)
	var users []mapping.SourceUser
	var wantA []string
	for i, m := range mails {
		u, want := f.user(m, 1)
		if i == 0 {
			wantA = want
		}
		users = append(users, u)
	}
	f.src.users = users
	f.pass(context.Background())
	if got := f.cloud("a@x.test"); !mapping.SameSet(got, wantA) {
		t.Fatalf("setup: a has %v", got)
	}

	users[0].Values = nil
	users[0].Unread = []mapping.UnreadValue{{Attribute: mapping.AttrUserSMIMECertificate, Size: 4_000_000,
		Reason: "userSMIMECertificate value of 4000000 bytes is larger than the 65536 bytes certsync reads (limits.maxValueBytes)"}}
	before := f.graph.Writes()
	p := f.pass(context.Background())
	if f.graph.Writes() != before {
		t.Fatalf("%d cloud writes for a user whose value could not be read", f.graph.Writes()-before)
	}
	if got := f.cloud("a@x.test"); !mapping.SameSet(got, wantA) {
		t.Fatalf("a's values went: cloud has %v, want %v", got, wantA)
	}
	var up *UserPlan
	for u := range p.Users() {
		if u.Anchor == users[0].Anchor {
			up = u
		}
	}
	if up == nil {
		t.Fatalf("a is not in the plan's report")
	}
	for _, want := range []string{"a@x.test", "userSMIMECertificate", "4000000 bytes", "nothing is changed"} {
		if !strings.Contains(up.Problem, want) {
			t.Errorf("problem %q does not say %q", up.Problem, want)
		}
	}
	if len(up.Rejected) != 1 || up.Rejected[0].Code != mapping.RejectTooLarge || !strings.Contains(up.Rejected[0].Reason, "a@x.test") {
		t.Errorf("rejections %+v, want one %s naming the user", up.Rejected, mapping.RejectTooLarge)
	}
	for _, tp := range up.Targets {
		if tp.Change.Changed() {
			t.Errorf("target %s changes: %+v", tp.Target, tp.Change)
		}
	}
}
