package agent

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
	"github.com/certsync/certsync/state"
)

// TestSettledUsersAreNotJudgedAgain: after a pass leaves users in line,
// the next pass over the same directory trusts their settled marks (no
// certificate parsed, no record read) and still counts their
// certificates; anything a verdict depends on that changes makes the
// user judged again, with the outcome a full judgement gives.
func TestSettledUsersAreNotJudgedAgain(t *testing.T) {
	mails := []string{"a@x.test", "b@x.test", "c@x.test"}
	type world struct {
		f    *fixture
		want map[string][]string
	}
	setup := func(t *testing.T) world {
		var cloud []graphtest.User
		for _, m := range append(mails, "other@x.test") {
			cloud = append(cloud, graphtest.User{Mail: m})
		}
		f := newFixture(t, cloud...)
		start := time.Now()
		f.now = func() time.Time { return start }
		f.policy = func(p *mapping.Policy) { p.SkipExpired = true }
		w := world{f: f, want: map[string][]string{}}
		for _, m := range mails {
			u, want := f.user(m, 1)
			f.src.users = append(f.src.users, u)
			w.want[m] = want
		}
		first := f.pass(context.Background())
		if first.Stats.UsersChanged != len(mails) || first.settled != 0 {
			t.Fatalf("first pass: %d changed, %d settled", first.Stats.UsersChanged, first.settled)
		}
		for _, u := range f.src.users {
			b, ok, err := f.store.Brief(u.Anchor)
			if err != nil || !ok || b.Settled == nil {
				t.Fatalf("%s has no settled mark after the first pass: %+v, %v, %v", u.DN, b, ok, err)
			}
		}
		again := f.pass(context.Background())
		if again.settled != len(mails) || again.Stats.CertificatesAccepted != len(mails) || again.Stats.UsersChanged != 0 {
			t.Fatalf("pass over the unchanged directory: %d settled, %d certificates accepted, %d changed; want %d, %d, 0",
				again.settled, again.Stats.CertificatesAccepted, again.Stats.UsersChanged, len(mails), len(mails))
		}
		return w
	}
	plan := func(t *testing.T, f *fixture, o PlanOptions) *Plan {
		t.Helper()
		p, err := f.agent().Plan(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		// change alters the world; settled is how many marks must still
		// hold in the next plan, changed the users whose cloud values it
		// changes.
		change  func(t *testing.T, w world) PlanOptions
		settled int
		changed []string
	}{
		{"nothing changes", func(*testing.T, world) PlanOptions { return PlanOptions{} }, 3, nil},
		{"a new certificate", func(t *testing.T, w world) PlanOptions {
			u, _ := w.f.user("a@x.test", 1)
			w.f.src.users[0].Values = u.Values
			return PlanOptions{}
		}, 2, []string{"a@x.test"}},
		{"an identity attribute", func(t *testing.T, w world) PlanOptions {
			// Judged again (the identity check reads it), and left as is:
			// a pass does not follow a changed match attribute unless
			// --reconcile.
			w.f.src.users[1].Attributes = map[string]string{"mail": "other@x.test"}
			return PlanOptions{}
		}, 2, nil},
		{"the trusted CAs", func(t *testing.T, w world) PlanOptions {
			other, err := pkitest.NewRootCA("Another CA")
			if err != nil {
				t.Fatal(err)
			}
			w.f.policy = func(p *mapping.Policy) { p.IssuingCAs, p.SkipExpired = []*x509.Certificate{other.Cert}, true }
			return PlanOptions{}
		}, 0, mails},
		{"time passes the certificates' expiry", func(t *testing.T, w world) PlanOptions {
			later := w.f.now().AddDate(1, 0, 1)
			w.f.now = func() time.Time { return later }
			return PlanOptions{}
		}, 0, mails},
		{"the record is written", func(t *testing.T, w world) PlanOptions {
			u := w.f.src.users[2]
			if err := w.f.store.Update([]state.Record{{Anchor: u.Anchor, Source: "test"}}, nil); err != nil {
				t.Fatal(err)
			}
			// c is judged again: it wants its value, which the cloud
			// already holds (kept, nothing to write).
			return PlanOptions{}
		}, 2, nil},
		{"a reconcile looks at everyone", func(*testing.T, world) PlanOptions { return PlanOptions{Reconcile: true} }, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := setup(t)
			p := plan(t, w.f, tt.change(t, w))
			if p.settled != tt.settled {
				t.Errorf("%d settled marks held, want %d", p.settled, tt.settled)
			}
			var changed []string
			for u := range p.Users() {
				if u.Changed() {
					changed = append(changed, u.Name)
				}
			}
			if !mapping.SameSet(changed, tt.changed) {
				t.Errorf("users changed %v, want %v", changed, tt.changed)
			}
			if p.Stats.CertificatesAccepted+p.Stats.CertificatesRejected < len(mails) {
				t.Errorf("%d certificates accepted, %d rejected: every user's must be counted", p.Stats.CertificatesAccepted, p.Stats.CertificatesRejected)
			}
		})
	}
	t.Run("a read-only state keeps no marks", func(t *testing.T) {
		w := setup(t)
		// b is judged again and earns a mark a writable pass would keep.
		w.f.src.users[1].Attributes = map[string]string{"mail": "other@x.test"}
		if p := plan(t, w.f, PlanOptions{}); len(p.settle) != 1 {
			t.Fatalf("a writable pass kept %d marks, want 1", len(p.settle))
		}
		path := w.f.store.Path()
		if err := w.f.store.Close(); err != nil {
			t.Fatal(err)
		}
		ro, err := state.Open(path, state.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		w.f.store = ro
		if p := plan(t, w.f, PlanOptions{}); len(p.settle) != 0 || p.settled != 2 {
			t.Errorf("a dry run kept %d marks (want none) and trusted %d (want 2)", len(p.settle), p.settled)
		}
	})
	t.Run("a settled pass keeps the marks and counts expiring certificates", func(t *testing.T) {
		w := setup(t)
		soon := w.f.now().AddDate(1, 0, -10) // the test certificates last a year
		w.f.now = func() time.Time { return soon }
		p := plan(t, w.f, PlanOptions{})
		if p.settled != len(mails) || p.Stats.CertificatesExpiringSoon != len(mails) {
			t.Errorf("%d settled, %d expiring soon; want %d and %d", p.settled, p.Stats.CertificatesExpiringSoon, len(mails), len(mails))
		}
		if got := w.f.cloud("a@x.test"); !mapping.SameSet(got, w.want["a@x.test"]) {
			t.Errorf("cloud of a: %v", got)
		}
	})
}
