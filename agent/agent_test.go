package agent

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/mapping/pkitest"
	"github.com/certsync/certsync/state"
)

// listSource is the agent's Source over a fixed list of users. It stands in
// for the directory only in these pass-logic tests; ldapsrc itself is
// tested against a real slapd, and the whole pipeline in cmd/certsync.
type listSource struct {
	users   []mapping.SourceUser
	failAt  int // with readErr: the read fails after this many users
	readErr error

	// Change tracking, when tracked: a read given a watermark returns only
	// the users named in changed (and deleted), and every read returns
	// the watermark "wm-<mark>".
	tracked  bool
	mark     int // the current watermark's number
	changed  map[string]bool
	deleted  []string
	lastSeen []byte // Since of the last read
	reads    int
}

func (s *listSource) Read(_ context.Context, req ldapsrc.ReadRequest, fn func(mapping.SourceUser) error) (ldapsrc.ReadResult, error) {
	s.reads++
	s.lastSeen = req.Since
	res := ldapsrc.ReadResult{Full: true}
	if s.tracked {
		res.Next = []byte(fmt.Sprintf("wm-%d", s.mark))
		res.Full = req.Since == nil
		if !res.Full {
			res.Deleted = s.deleted
		}
	}
	for i, u := range s.users {
		if s.readErr != nil && i == s.failAt {
			return res, s.readErr
		}
		if !res.Full && !s.changed[u.Anchor] {
			continue
		}
		res.Entries++
		if err := fn(u); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (s *listSource) FindUser(_ context.Context, id string) (ldapsrc.FoundUser, error) {
	for _, u := range s.users {
		if u.Attr("mail") == id {
			return ldapsrc.FoundUser{User: u, InScope: true}, nil
		}
	}
	return ldapsrc.FoundUser{}, ldapsrc.ErrUserNotFound
}

type fixture struct {
	t      *testing.T
	ca     *pkitest.CA
	graph  *graphtest.Server
	sink   *cloudsink.Graph
	store  *state.Store
	src    *listSource
	ids    map[string]string // mail → cloud id
	safety Safety
	track  Tracking
	now    func() time.Time // nil: time.Now
	incr   bool             // pass plans incrementally
	adopt  bool             // the target adopts existing values
	// more are further directories read after src ("test"), in order.
	more []NamedSource
	// policy, when set, tunes the policy of the next agent.
	policy func(*mapping.Policy)
	// source, when set, stands for src as directory "test".
	source Source
}

func newFixture(t *testing.T, cloudUsers ...graphtest.User) *fixture {
	t.Helper()
	ca, err := pkitest.NewRootCA("Agent Test CA")
	if err != nil {
		t.Fatal(err)
	}
	g, err := graphtest.Start(graphtest.Options{Users: cloudUsers, ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	cred, err := cloudsink.NewCredential(cloudsink.CredentialConfig{Method: "secret", TenantID: g.TenantID(), ClientID: g.ClientID(),
		Secret: "s", AuthorityHost: g.URL() + "/", RootCAs: g.RootCAs()})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := cloudsink.NewGraph(cloudsink.GraphConfig{Endpoint: g.URL(), Credential: cred, RootCAs: g.RootCAs(),
		MaxAttempts: 2, Backoff: 10 * time.Millisecond}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f := &fixture{t: t, ca: ca, graph: g, sink: sink, store: st, src: &listSource{}, ids: map[string]string{}}
	for _, u := range g.Users() {
		f.ids[u.Mail] = u.ID
	}
	return f
}

func (f *fixture) agent() *Agent {
	f.t.Helper()
	graph, err := NewGraphTarget(GraphSettings{}, Match{SourceAttribute: "mail", CloudProperty: "mail"}, f.sink)
	if err != nil {
		f.t.Fatal(err)
	}
	var target Target = graph
	if f.adopt {
		target = adopting{graph}
	}
	policy := mapping.Policy{IssuingCAs: []*x509.Certificate{f.ca.Cert}, MaxCertificates: 15}
	if f.policy != nil {
		f.policy(&policy)
	}
	var src Source = f.src
	if f.source != nil {
		src = f.source
	}
	a, err := New(Options{
		Sources: append([]NamedSource{{Name: "test", Source: src}}, f.more...), Store: f.store, Log: zaptest.NewLogger(f.t), Safety: f.safety, Tracking: f.track, Now: f.now,
		Policy:  policy,
		Targets: []Target{target},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	// Every plan of these tests goes through the temporary file, as a
	// large one does (the runs, the codec, the overrides); the tests in
	// cmd/certsync keep their small plans in memory.
	a.spillAfter, a.spillDir = 0, f.t.TempDir()
	return a
}

// user makes a directory user with certs fresh certificates; it returns
// the user and the SKI bindings they should produce.
func (f *fixture) user(mail string, certs int) (mapping.SourceUser, []string) {
	f.t.Helper()
	u := mapping.SourceUser{Anchor: "anchor-" + mail, DN: "uid=" + mail, Attributes: map[string]string{"mail": mail}}
	var want []string
	for i := 0; i < certs; i++ {
		c, _, err := f.ca.Issue(pkitest.LeafOptions{CommonName: mail})
		if err != nil {
			f.t.Fatal(err)
		}
		u.Values = append(u.Values, mapping.RawValue{Attribute: mapping.AttrUserCertificate, Data: c.Raw})
		b, err := mapping.Binding(c, mapping.BindingSKI)
		if err != nil {
			f.t.Fatal(err)
		}
		want = append(want, b)
	}
	return u, want
}

func (f *fixture) pass(ctx context.Context) *Plan {
	f.t.Helper()
	a := f.agent()
	p, err := a.Plan(ctx, PlanOptions{Incremental: f.incr})
	if err != nil {
		f.t.Fatalf("plan: %v", err)
	}
	if err := a.Apply(ctx, p, 0); err != nil {
		f.t.Fatalf("apply: %v", err)
	}
	return p
}

func (f *fixture) cloud(mail string) []string {
	u, ok := f.graph.User(f.ids[mail])
	if !ok {
		f.t.Fatalf("no cloud user %s", mail)
	}
	return u.CertificateUserIDs
}

// adopting is the Graph target with AdoptExisting on, for the pass logic
// of adoption (the real Graph target never adopts).
type adopting struct{ *GraphTarget }

func (adopting) AdoptExisting() bool { return true }
