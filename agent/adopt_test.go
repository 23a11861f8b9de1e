package agent

import (
	"context"
	"slices"
	"testing"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping"
)

// Values in the cloud that certsync did not publish are left alone, or,
// with AdoptExisting, taken over: kept when wanted, removed when not.
func TestAdoptExisting(t *testing.T) {
	const foreign = "X509:<SKI>FOREIGN"
	for _, adopt := range []bool{false, true} {
		t.Run(map[bool]string{false: "leave", true: "adopt"}[adopt], func(t *testing.T) {
			f := newFixture(t, graphtest.User{Mail: "a@x.test", UserPrincipalName: "a@x.test", CertificateUserIDs: []string{foreign}})
			u, want := f.user("a@x.test", 1)
			f.src.users = []mapping.SourceUser{u}
			f.adopt = adopt

			p := f.pass(context.Background())
			if len(slices.Collect(p.Users())) != 1 || len(slices.Collect(p.Users())[0].Targets) != 1 {
				t.Fatalf("plan users = %d, want 1 with one target", len(slices.Collect(p.Users())))
			}
			tp := slices.Collect(p.Users())[0].Targets[0]
			got := f.cloud("a@x.test")
			if adopt {
				if !slices.Equal(tp.Adopted, []string{foreign}) || !slices.Equal(tp.Change.Remove, []string{foreign}) {
					t.Fatalf("adopted %v, remove %v; want the foreign value adopted and removed", tp.Adopted, tp.Change.Remove)
				}
				if !mapping.SameSet(got, want) {
					t.Fatalf("cloud = %v, want %v", got, want)
				}
				rec, _, _ := f.store.Get(u.Anchor)
				if !mapping.SameSet(rec.Targets[tp.Target].Values, want) {
					t.Fatalf("owned = %v, want %v", rec.Targets[tp.Target].Values, want)
				}
				return
			}
			if len(tp.Adopted) != 0 || !slices.Equal(tp.Change.Unowned, []string{foreign}) {
				t.Fatalf("adopted %v, unowned %v; want nothing adopted and the foreign value reported as kept", tp.Adopted, tp.Change.Unowned)
			}
			if !mapping.SameSet(got, []string{foreign, want[0]}) {
				t.Fatalf("cloud = %v, want the foreign value kept", got)
			}
		})
	}
}
