package mapping

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

// memo is a ChainMemo in memory that counts what Evaluate asked of it.
type memo struct {
	mu         sync.Mutex
	chains     map[[sha256.Size]byte]VerifiedChain
	remembered int
}

func (m *memo) VerifiedChain(sum [sha256.Size]byte) (VerifiedChain, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vc, ok := m.chains[sum]
	return vc, ok
}

func (m *memo) RememberChain(sum [sha256.Size]byte, vc VerifiedChain) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.chains[sum] = vc
	m.remembered++
}

// TestChainMemo proves that a remembered chain spares the signature check
// only while everything it depends on holds, and that every other check
// still runs on every evaluation: each case evaluates once to fill the
// memo, changes one input, and evaluates again.
func TestChainMemo(t *testing.T) {
	fx := newFixture(t)
	base := func() Policy {
		return Policy{IssuingCAs: []*x509.Certificate{fx.inter.Cert}, SkipExpired: true}
	}
	other, err := pkitest.NewRootCA("Unrelated CA")
	if err != nil {
		t.Fatal(err)
	}
	alice := fx.cert("alice")
	aliceSum := sha256.Sum256(alice.Raw)
	tests := []struct {
		name string
		// second changes the policy, the values or the memo before the
		// second evaluation.
		second func(p *Policy, vs *[]RawValue, m *memo)
		// verified: the second evaluation checked the signature again
		// (and remembered the chain anew); code: its rejection, "" for
		// accepted.
		verified bool
		code     string
	}{
		{name: "nothing changed", second: func(*Policy, *[]RawValue, *memo) {}},
		{name: "an unrelated CA added", second: func(p *Policy, _ *[]RawValue, _ *memo) {
			p.IssuingCAs = append(p.IssuingCAs, other.Cert)
		}},
		{name: "issuing CA no longer trusted", second: func(p *Policy, _ *[]RawValue, _ *memo) {
			p.IssuingCAs = []*x509.Certificate{other.Cert}
		}, code: RejectUntrusted},
		{name: "trust moved to the root", second: func(p *Policy, vs *[]RawValue, _ *memo) {
			// The remembered chain ends at the issuing CA, no longer
			// trusted on its own: the chain through the root (the issuing
			// CA now from the user's bag) is found and remembered.
			p.IssuingCAs = []*x509.Certificate{fx.root.Cert}
			*vs = []RawValue{{Attribute: AttrUserSMIMECertificate, Data: fx.outlook("alice", "inter")}}
		}, verified: true},
		{name: "policy: EKU", second: func(p *Policy, _ *[]RawValue, _ *memo) {
			p.ExtKeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
		}, code: RejectEKU},
		{name: "CRL revokes it", second: func(p *Policy, _ *[]RawValue, _ *memo) {
			set, _ := NewRevocationSet([]CRL{fx.crl("inter", pkitest.CRLOptions{
				ThisUpdate: fx.now.Add(-time.Minute), NextUpdate: fx.now.Add(time.Hour),
				Revoked: []pkitest.Revoked{fx.revoke("alice", pkitest.ReasonKeyCompromise, fx.now.Add(-time.Minute))},
			})}, p.IssuingCAs, fx.now)
			p.CheckRevocation, p.Revocation = true, set
		}, code: RejectRevoked},
		{name: "outside the chain's window", second: func(_ *Policy, _ *[]RawValue, m *memo) {
			vc := m.chains[aliceSum]
			vc.Until = fx.now.Add(-time.Second)
			m.chains[aliceSum] = vc
		}, verified: true},
		{name: "forged memo: chain through a CA not in the bags", second: func(_ *Policy, _ *[]RawValue, m *memo) {
			vc := m.chains[aliceSum]
			vc.CAs = append([][sha256.Size]byte{sha256.Sum256(other.Cert.Raw)}, vc.CAs...)
			m.chains[aliceSum] = vc
		}, verified: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memo{chains: map[[sha256.Size]byte]VerifiedChain{}}
			p, vs := base(), []RawValue{uc(alice.Raw)}
			if ev := EvaluateRemembering(vs, p, fx.now, m); len(ev.Accepted) != 1 || m.remembered != 1 {
				t.Fatalf("first evaluation: %d accepted, %d remembered; want 1, 1", len(ev.Accepted), m.remembered)
			}
			if got := m.chains[aliceSum]; len(got.CAs) != 1 || got.CAs[0] != sha256.Sum256(fx.inter.Cert.Raw) || !got.Expires.Equal(alice.NotAfter) {
				t.Fatalf("remembered %+v, want the issuing CA only, expiring with the certificate", got)
			}
			tt.second(&p, &vs, m)
			ev := EvaluateRemembering(vs, p, fx.now, m)
			if verified := m.remembered > 1; verified != tt.verified {
				t.Errorf("signature checked again: %v, want %v", verified, tt.verified)
			}
			code := ""
			if len(ev.Rejected) > 0 {
				code = ev.Rejected[0].Code
			}
			if code != tt.code || len(ev.Accepted)+len(ev.Rejected) != 1 {
				t.Errorf("second evaluation: accepted %d, rejected %+v; want code %q", len(ev.Accepted), ev.Rejected, tt.code)
			}
			// The same verdict as without any memo.
			want := Evaluate(vs, p, fx.now)
			if len(want.Accepted) != len(ev.Accepted) || len(want.Rejected) != len(ev.Rejected) ||
				(len(want.Rejected) > 0 && want.Rejected[0].Reason != ev.Rejected[0].Reason) {
				t.Errorf("with the memo %+v, without %+v", ev.Rejected, want.Rejected)
			}
		})
	}
}

// TestChainMemoBag: a chain through an intermediate of the user's bag is
// used again only while the bag still carries it.
func TestChainMemoBag(t *testing.T) {
	fx := newFixture(t)
	m := &memo{chains: map[[sha256.Size]byte]VerifiedChain{}}
	p := Policy{IssuingCAs: []*x509.Certificate{fx.root.Cert}}
	bag := []RawValue{{Attribute: AttrUserSMIMECertificate, Data: fx.outlook("alice", "inter")}}
	if ev := EvaluateRemembering(bag, p, fx.now, m); len(ev.Accepted) != 1 || m.remembered != 1 {
		t.Fatalf("through the bag: %d accepted, %d remembered", len(ev.Accepted), m.remembered)
	}
	if ev := EvaluateRemembering(bag, p, fx.now, m); len(ev.Accepted) != 1 || m.remembered != 1 {
		t.Fatalf("again: %d accepted, %d remembered; want the chain used again", len(ev.Accepted), m.remembered)
	}
	ev := EvaluateRemembering([]RawValue{uc(fx.der("alice"))}, p, fx.now, m)
	if len(ev.Rejected) != 1 || ev.Rejected[0].Code != RejectUntrusted || m.remembered != 1 {
		t.Fatalf("without the bag: %+v, %d remembered; want untrusted", ev.Rejected, m.remembered)
	}
}
