package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

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
	// Records is Get for a batch, in one read transaction; fn must not
	// use the store.
	Records(anchors []string, fn func(i int, r state.Record, found bool, err error))
	ForEach(fn func(state.Record) error) error
	// Briefs and ForEachBrief read what a pass needs of records without
	// reading them whole (state.Brief); Briefs as Records.
	Briefs(anchors []string, fn func(i int, b state.Brief, found bool, err error))
	ForEachBrief(fn func(state.Brief) error) error
	Count() (int, error)
	Update(puts []state.Record, deletes []string) error
	Commit(c state.Commit) error
	Meta(key string, v any) (bool, error)
	SetLastPass(p state.PassSummary) error
}

var (
	_ Source           = (*ldapsrc.Source)(nil)
	_ Store            = (*state.Store)(nil)
	_ CertificateProbe = (*ldapsrc.Source)(nil)
)

// NamedSource is one directory of the agent. Its name keys the state
// records of its users and its change-tracking watermark, so it must stay
// the same for the life of the state file.
type NamedSource struct {
	Name   string
	Source Source
}

// Safety holds the plan-wide deletion guard.
type Safety struct {
	MaxDeletes       int // users losing values in one pass; 0: no limit
	MaxDeletePercent int // of the users in state; 0: no limit
}

// Options configure an Agent. At least one source, the store and at least
// one target are required.
type Options struct {
	// Sources are read in this order. State records written before
	// certsync read several directories name no source: they belong to
	// the first.
	Sources []NamedSource
	Store   Store
	Targets []Target
	Policy  mapping.Policy
	Safety  Safety
	// Tracking governs incremental passes.
	Tracking Tracking
	// CRLs keeps the CRLs between the passes of a long-running agent when
	// Policy.CheckRevocation is on; nil: read them every pass.
	CRLs *CRLCache
	Log  *zap.Logger
	// Now is the clock; tests move it. Default time.Now.
	Now func() time.Time
	// SpillDir is where a plan too large to hold in memory keeps its
	// users while the pass lasts (the state file's directory); "": the
	// system's temporary directory.
	SpillDir string
}

// Tracking governs incremental passes (PlanOptions.Incremental).
type Tracking struct {
	// Fingerprint identifies what decides the values users should hold
	// (CAs, policy, targets: see Fingerprint); each source's watermark
	// covers which of its users are in scope. A watermark taken under
	// another fingerprint is not used: the next pass reads everything.
	Fingerprint string
	// FullInterval: an incremental pass reads everything again when the
	// last full read is older, to find deleted users and users that left
	// the filter. 0: only when the directory asks for it.
	FullInterval time.Duration
}

// Agent plans and applies passes over one open state file. It is not safe
// for concurrent passes; the state file's lock keeps one agent per file.
type Agent struct {
	sources []NamedSource
	store   Store
	targets []Target
	attrs   []attrSpec // flattened over targets, in target order
	policy  mapping.Policy
	safety  Safety
	track   Tracking
	crls    *CRLCache
	log     *zap.Logger
	now     func() time.Time
	// spillDir and spillAfter: see spill.
	spillDir   string
	spillAfter int
	// indexMask is ANDed into the plan index's hashes: all ones, or
	// zero in a test that makes every hash collide. indexRun: entries
	// the index holds before it writes a run to its file (0: ixRun).
	indexMask uint32
	indexRun  int
}

// attrSpec is one attribute of one target.
type attrSpec struct {
	target int
	name   string
	limit  int
	adopt  bool
	unique bool // a value may sit on one account only
}

// New checks the options and builds an Agent.
func New(o Options) (*Agent, error) {
	if len(o.Sources) == 0 || o.Store == nil {
		return nil, errors.New("agent: a source and a state store are required")
	}
	if len(o.Targets) == 0 {
		return nil, errors.New("agent: no target is enabled")
	}
	a := &Agent{sources: o.Sources, store: o.Store, targets: o.Targets, policy: o.Policy, safety: o.Safety, track: o.Tracking, crls: o.CRLs, log: o.Log, now: o.Now,
		spillDir: o.SpillDir, spillAfter: spillAfter, indexMask: ^uint32(0)}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.crls == nil {
		a.crls = &CRLCache{}
	}
	names := map[string]bool{}
	for i, s := range o.Sources {
		if s.Source == nil || s.Name == "" {
			return nil, fmt.Errorf("agent: source %d has no name or no directory", i)
		}
		if names[s.Name] {
			return nil, fmt.Errorf("agent: two sources are named %q", s.Name)
		}
		names[s.Name] = true
	}
	seen := map[string]bool{}
	for i, t := range o.Targets {
		if t == nil {
			return nil, fmt.Errorf("agent: target %d is nil", i)
		}
		for _, at := range t.Attributes() {
			if seen[at.Name] {
				return nil, fmt.Errorf("agent: attribute %s is written by two targets", at.Name)
			}
			seen[at.Name] = true
			a.attrs = append(a.attrs, attrSpec{target: i, name: at.Name, limit: at.Limit, adopt: t.AdoptExisting(), unique: at.Unique})
		}
	}
	return a, nil
}

// sourceOf names the source a state record belongs to: the one it names,
// or the first for records written before there were several; "" when it
// names a source that is no longer configured (no read then covers it, so
// nothing is ever concluded about it).
func (a *Agent) sourceOf(rec state.Record) string {
	if rec.Source == "" {
		return a.sources[0].Name
	}
	for _, s := range a.sources {
		if s.Name == rec.Source {
			return s.Name
		}
	}
	return ""
}

// ErrDeletionLimit: the plan removes values from more users than
// safety allows; nothing was applied.
var ErrDeletionLimit = errors.New("deletion limit exceeded")

// ErrSourceFailed: a directory could not be read; its users were left as
// they were, the other directories' changes were applied.
var ErrSourceFailed = errors.New("directory could not be read")
