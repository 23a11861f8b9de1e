package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// A certificate is published only for the user it names: B, who put A's
// certificate on their own entry, does not get A's tenant-unique binding.
func TestColleaguesCertificateIsRejected(t *testing.T) {
	f := newFixture(t, graphtest.User{Mail: "a@x.test"}, graphtest.User{Mail: "b@x.test"})
	f.policy = func(p *mapping.Policy) { p.Identity = mapping.IdentityMatch }
	certA, _, err := f.ca.Issue(pkitest.LeafOptions{CommonName: "a", Email: "A@x.test"})
	if err != nil {
		t.Fatal(err)
	}
	bindingA, err := mapping.Binding(certA, mapping.BindingSKI)
	if err != nil {
		t.Fatal(err)
	}
	a := mapping.SourceUser{Anchor: "anchor-a", DN: "uid=a", Attributes: map[string]string{"mail": "a@x.test"},
		Values: []mapping.RawValue{{Attribute: mapping.AttrUserCertificate, Data: certA.Raw}}}
	b := mapping.SourceUser{Anchor: "anchor-b", DN: "uid=b", Attributes: map[string]string{"mail": "b@x.test"},
		Values: []mapping.RawValue{{Attribute: mapping.AttrUserCertificate, Data: certA.Raw}}}
	f.src.users = []mapping.SourceUser{b, a}
	p := f.pass(context.Background())
	if got := f.cloud("a@x.test"); !mapping.SameSet(got, []string{bindingA}) {
		t.Errorf("a holds %v, want its own binding", got)
	}
	if got := f.cloud("b@x.test"); len(got) != 0 {
		t.Errorf("b holds %v, want nothing", got)
	}
	var rejected []mapping.Rejection
	for u := range p.Users() {
		if u.Anchor == "anchor-b" {
			rejected = u.Rejected
		}
	}
	if len(rejected) != 1 || rejected[0].Code != mapping.RejectIdentityMismatch ||
		!strings.Contains(rejected[0].Reason, "a@x.test") || !strings.Contains(rejected[0].Reason, "b@x.test") {
		t.Fatalf("b's rejections %+v, want %s naming a@x.test and b@x.test", rejected, mapping.RejectIdentityMismatch)
	}
}
