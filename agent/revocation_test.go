package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
)

// crlListSource is listSource with CRLs: the CA's CRL, or err.
type crlListSource struct {
	*listSource
	crl []byte
	err error
}

func (s *crlListSource) CRLs(context.Context, ldapsrc.CRLOptions) ([]ldapsrc.CRLEntry, error) {
	if s.err != nil {
		return nil, s.err
	}
	return []ldapsrc.CRLEntry{{DN: "CN=Agent Test CA,CN=CDP", CA: "Agent Test CA", Base: [][]byte{s.crl}}}, nil
}

// Under revocationUnavailable: reject, CRLs that could not be read (a
// directory outage) fail the pass: they must not turn into every
// certificate rejected and withdrawn. A directory without a CRL container
// is no outage: its CAs' certificates are rejected as the policy says.
func TestCRLReadErrorWithdrawsNothing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		wantErr   string // "" : the pass runs
		wantCloud bool   // alice keeps her binding
	}{
		{"connection refused", syscall.ECONNREFUSED, "reading the CRLs from directory test", true},
		{"no CRL container", ldapsrc.ErrNoCRLContainer, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, graphtest.User{UserPrincipalName: "alice@x.test", Mail: "alice@x.test"})
			f.policy = func(p *mapping.Policy) {
				p.CheckRevocation, p.RevocationUnavailable = true, mapping.RevocationReject
			}
			alice, want := f.user("alice@x.test", 1)
			f.src.users = []mapping.SourceUser{alice}
			crl, err := f.ca.CRL(pkitest.CRLOptions{})
			if err != nil {
				t.Fatal(err)
			}
			src := &crlListSource{listSource: f.src, crl: crl}
			f.source = src
			f.pass(context.Background())
			if got := f.cloud("alice@x.test"); !slices.Equal(got, want) {
				t.Fatalf("first pass: %v, want %v", got, want)
			}

			src.err = tc.err
			a := f.agent()
			p, err := a.Plan(context.Background(), PlanOptions{})
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, tc.err)):
				t.Fatalf("plan: %v; want an error with %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Fatalf("plan: %v", err)
			case err == nil:
				if err := a.Apply(context.Background(), p, p.Guard.UsersRemoving); err != nil {
					t.Fatal(err)
				}
			}
			if got := f.cloud("alice@x.test"); slices.Equal(got, want) != tc.wantCloud {
				t.Fatalf("cloud after the pass: %v; want alice's binding kept: %v", got, tc.wantCloud)
			}
		})
	}
}
