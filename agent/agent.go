package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// Source is what a pass reads users from (ldapsrc.Source).
type Source interface {
	Read(ctx context.Context, req ldapsrc.ReadRequest, fn func(mapping.SourceUser) error) (ldapsrc.ReadResult, error)
	FindUser(ctx context.Context, id string) (ldapsrc.FoundUser, error)
}

// Store is what a pass remembers with (state.Store).
type Store interface {
	Get(anchor string) (state.Record, bool, error)
	ForEach(fn func(state.Record) error) error
	Count() (int, error)
	Update(puts []state.Record, deletes []string) error
	Commit(c state.Commit) error
	Meta(key string, v any) (bool, error)
	SetLastPass(p state.PassSummary) error
}

var (
	_ Source = (*ldapsrc.Source)(nil)
	_ Store  = (*state.Store)(nil)
)

// Match says how a source user is found in one cloud service.
type Match struct {
	SourceAttribute string // e.g. objectGUID (its base64 is onPremisesImmutableId), mail
	CloudProperty   string // onPremisesImmutableId, mail, userPrincipalName
}

// SinkSpec is one cloud service with the rules that feed it.
type SinkSpec struct {
	Sink  cloudsink.Sink
	Match Match
	// Desired renders a user's verdict as the values each target should
	// hold; one entry per target of the sink.
	Desired map[string]func(mapping.Evaluation) []string
	// Account names what the sink's accounts are, in reports: "mailbox";
	// default "cloud user".
	Account string
	// AdoptExisting: values already in the cloud that certsync did not
	// publish become its own (kept when wanted, removed when not), instead
	// of being left alone. For a cutover from a tool that published the
	// same values, such as Entra Connect.
	AdoptExisting bool
}

// Safety holds the plan-wide deletion guard.
type Safety struct {
	MaxDeletes       int // users losing values in one pass; 0: no limit
	MaxDeletePercent int // of the users in state; 0: no limit
}

// Options configure an Agent. Source, Store and at least one sink are
// required.
type Options struct {
	Source Source
	Store  Store
	Sinks  []SinkSpec
	Policy mapping.Policy
	Safety Safety
	// Tracking governs incremental passes.
	Tracking Tracking
	// CRLs keeps the CRLs between the passes of a long-running agent when
	// Policy.CheckRevocation is on; nil: read them every pass.
	CRLs *CRLCache
	Log  *zap.Logger
	// Now is the clock; tests move it. Default time.Now.
	Now func() time.Time
}

// Tracking governs incremental passes (PlanOptions.Incremental).
type Tracking struct {
	// Fingerprint identifies what decides the values users should hold
	// (CAs, policy, targets); the source's watermark covers which users
	// are in scope. A watermark taken under another fingerprint is not
	// used: the next pass reads everything.
	Fingerprint string
	// FullInterval: an incremental pass reads everything again when the
	// last full read is older, to find deleted users and users that left
	// the filter. 0: only when the directory asks for it.
	FullInterval time.Duration
}

// Agent runs passes. It is not safe for concurrent passes; the state
// file's lock keeps one agent per file.
type Agent struct {
	src     Source
	store   Store
	sinks   []SinkSpec
	targets []targetSpec // flattened over sinks, in sink order
	policy  mapping.Policy
	safety  Safety
	track   Tracking
	crls    *CRLCache
	log     *zap.Logger
	now     func() time.Time
}

type targetSpec struct {
	sink    int
	name    string
	limit   int
	adopt   bool
	desired func(mapping.Evaluation) []string
}

// New checks the options and builds an Agent.
func New(o Options) (*Agent, error) {
	if o.Source == nil || o.Store == nil {
		return nil, errors.New("agent: a source and a state store are required")
	}
	if len(o.Sinks) == 0 {
		return nil, errors.New("agent: no cloud target is enabled")
	}
	a := &Agent{src: o.Source, store: o.Store, sinks: o.Sinks, policy: o.Policy, safety: o.Safety, track: o.Tracking, crls: o.CRLs, log: o.Log, now: o.Now}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.crls == nil {
		a.crls = &CRLCache{}
	}
	seen := map[string]bool{}
	for i, s := range o.Sinks {
		if s.Sink == nil {
			return nil, fmt.Errorf("agent: sink %d is nil", i)
		}
		for _, t := range s.Sink.Targets() {
			fn := s.Desired[t.Name]
			if fn == nil {
				return nil, fmt.Errorf("agent: target %s has no rule for its values", t.Name)
			}
			if seen[t.Name] {
				return nil, fmt.Errorf("agent: target %s is configured twice", t.Name)
			}
			seen[t.Name] = true
			a.targets = append(a.targets, targetSpec{sink: i, name: t.Name, limit: t.Limit, adopt: s.AdoptExisting, desired: fn})
		}
	}
	return a, nil
}

// ErrDeletionLimit: the plan removes values from more users than
// safety allows; nothing was applied.
var ErrDeletionLimit = errors.New("deletion limit exceeded")
