package agent

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// Plan modes.
const (
	ModeFull        = "full"        // every user in scope, plus users gone from it
	ModeIncremental = "incremental" // users changed since the last pass
	ModeUser        = "user"        // one user, named on the command line
)

// Plan is what one pass would change, computed before anything is
// written. Users lists only users worth showing: those with changes,
// problems or rejected certificates (and, in user mode, the one user).
// A large plan keeps its users in a temporary file: Close it.
type Plan struct {
	// Mode is ModeUser, ModeIncremental when every directory read was
	// incremental, else ModeFull.
	Mode    string
	Started time.Time
	Stats   Stats
	Guard   Guard
	// FullReason says why a pass asked to be incremental read everything
	// (per directory when there are several).
	FullReason string
	// Sources is each directory's part of the pass, in configuration order.
	Sources []SourceReport
	// Orphaned are values certsync wrote to targets no longer configured
	// (orphan.go); counted on full reads.
	Orphaned []Orphaned
	// Tenant lists the tenant-wide settings to change (see tenant.go).
	Tenant []*TenantChange

	// tracking is committed with the results, per source name; only
	// sources read in full or incremental mode that succeeded.
	tracking map[string]*tracking
	// users are every user of the plan: those worth showing (Users) and
	// those looked up in the cloud with nothing to show or write, whose
	// state may still have news (values found already in place), so Apply
	// records them too. Kept in runs sorted in report order, in a
	// temporary file when there are many (spill).
	users *spill
	// overrides are users changed after they were spilled (conflict.go),
	// by number in users.
	overrides map[int]*UserPlan
	// given: the users were set by hand (SetUsers), all to show.
	given bool
	// readErr: reading users back failed (UsersErr).
	readErr error
	// held is the most users the plan held in memory at once while it was
	// made and applied (chunks, overrides), for tests.
	held int

	// forget lists anchors whose state records hold nothing certsync
	// published and whose users the directory no longer returns.
	forget []string
	// settle are the settled marks earned by users the plan leaves
	// alone (settled.go); Apply stores them.
	settle map[string]state.Settled
	// settled counts the users whose settled marks held.
	settled int
}

// Users yields the users worth showing: those with changes, problems or
// rejected certificates (and, in user mode, the one user), sorted by
// Name, then Source, then Anchor. A large plan reads them back from its
// temporary file each time: UsersErr says whether that failed.
func (p *Plan) Users() iter.Seq[*UserPlan] {
	return func(yield func(*UserPlan) bool) {
		if p.users == nil {
			return
		}
		for i, u := range p.users.merged(&p.readErr) {
			if o := p.overrides[i]; o != nil {
				u = o
			}
			if (p.given || u.reportable(p.Mode)) && !yield(u) {
				return
			}
		}
	}
}

// SetUsers makes users, in this order, the plan's users to show, held in
// memory: for plans put together by hand (tests, tools), not to apply.
func (p *Plan) SetUsers(users ...*UserPlan) *Plan {
	p.users = &spill{mem: users, after: len(users), runs: [][2]int{{0, len(users)}}}
	p.given = true
	return p
}

// UsersErr is the error that cut Users short, if any.
func (p *Plan) UsersErr() error { return p.readErr }

// Close gives back what the plan holds beyond memory (its temporary
// file). Users yields nothing after.
func (p *Plan) Close() error {
	err := p.users.close()
	p.users, p.overrides = nil, nil
	return err
}

// all yields every user of the plan in the order kept (the runs one
// after the other), overrides in their place.
func (p *Plan) all() iter.Seq2[*UserPlan, error] {
	return func(yield func(*UserPlan, error) bool) {
		i := 0
		for u, err := range p.users.scan(0, p.users.len()) {
			if o := p.overrides[i]; o != nil && err == nil {
				u = o
			}
			i++
			if !yield(u, err) || err != nil {
				return
			}
		}
	}
}

func (p *Plan) noteHeld(n int) { p.held = max(p.held, n+len(p.overrides)) }

// SourceReport is one directory's part of a pass.
type SourceReport struct {
	Name           string
	Mode           string // ModeFull, ModeIncremental or ModeUser
	FullReason     string
	UsersRead      int
	LDAPOperations int
	// Err: the read failed or was cut short. Nothing of this directory's
	// users changes in this pass; the other directories' do.
	Err error
}

// Err is the pass's directory error: nil when every directory was read.
func (p *Plan) Err() error {
	var errs []error
	for _, s := range p.Sources {
		if s.Err != nil {
			errs = append(errs, fmt.Errorf("directory %s: %w", s.Name, s.Err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("agent: %w: %w; its users were left as they were", ErrSourceFailed, errors.Join(errs...))
}

// Stats counts a plan and, once applied, its outcome.
type Stats struct {
	UsersRead      int // from the directories
	LDAPOperations int // requests sent to the directories
	UsersInState   int // before the pass
	UsersChanged   int // with at least one write planned (or done)
	UsersRemoving  int // left with fewer values in a target (the guard counts these; renewals are not)
	UsersUnmatched int // no account in a target's service
	// UsersSkipped: a target's service will not take values from certsync
	// for them (still synced by Entra Connect), or they wait for another
	// user's values to leave their account first. Reported, not failed.
	UsersSkipped         int
	UsersFailed          int // conflicts, lookup or write failed, other problems
	ValuesAdded          int
	ValuesRemoved        int
	CertificatesAccepted int
	CertificatesRejected int
	// CertificatesExpiringSoon: accepted certificates of the users read
	// that expire within ExpiringWithin (all users only on a full read).
	CertificatesExpiringSoon int
}

// UserPlan is one user's part of a plan.
type UserPlan struct {
	Anchor string
	Source string // the directory's name
	DN     string
	Name   string
	// Departed: certsync published for this user before, but the
	// directory no longer returns it (deleted, or out of the filter).
	Departed bool
	// OutOfScope (user mode): found, but outside the configured filter.
	OutOfScope bool
	Accepted   []CertInfo
	Rejected   []mapping.Rejection
	// Withheld are directory values not published as they are (to targets
	// that publish values verbatim) because a certificate in them failed.
	Withheld []mapping.Withheld
	// Values are the directory values published as they are, each with
	// the SHA-256 of its certificates (kept like Accepted).
	Values  []ValueInfo
	Targets []*TargetPlan
	// Problem is a user-level problem (the same user read from two
	// directories, ...); nothing is written for the user.
	Problem string

	record    state.Record
	hasRecord bool
	// lookup: a candidate, looked up in the cloud (the others are only
	// reported).
	lookup bool
	// reclaim is, per target attribute, what PlanOptions.Reclaim may take
	// back as certsync's own (nil otherwise).
	reclaim [][]string
	// mark is the settled mark the user earns if the pass leaves its
	// record in line (settled.go); nil when it cannot earn one.
	mark      *state.Settled
	accepted  int      // certificates accepted, counted even when Accepted is not kept
	expiring  int      // of those, expiring within ExpiringWithin
	matchKeys []string // per target: the value looked up ("" = none)
}

// CertInfo describes an accepted certificate for reports.
type CertInfo struct {
	Subject    string
	Serial     string
	SHA256     string
	NotBefore  time.Time
	NotAfter   time.Time
	Attributes []string
	// Warnings are checks that could not be made (a CA without a usable
	// CRL under revocationUnavailable: keep).
	Warnings []string
	// SID is the account the certificate's SID extension (KB5014754)
	// binds it to: the user's own, or it would have been rejected.
	SID string
}

// ValueInfo describes a directory value published as it is, for reports.
type ValueInfo struct {
	Attribute    string
	SHA256       string // of the value; a target's value is its base64
	PKCS7        bool   // a PKCS#7 blob, else one DER certificate
	Certificates []string
}

// TargetPlan is one attribute of one target of one user: what certsync
// wants there, what the service holds, and the change.
type TargetPlan struct {
	Target    string // the attribute's name, e.g. graph.certificateUserIds
	CloudID   string
	CloudName string // userPrincipalName, for people
	Desired   []string
	Change    mapping.TargetChange
	// Problem says why this attribute is not written (no account, refused,
	// a conflict, ...); Change is then empty but for Unowned.
	Problem string
	// Unmatched: no account matches (reported, not a failure).
	Unmatched bool
	// Skipped: the service will not take values from certsync for this
	// account (synced by Entra Connect), or the account waits for another
	// user's values to be withdrawn first; reported, not a failure.
	Skipped bool
	// Applied / Err are set by Apply.
	Applied bool
	Err     error

	// Adopted are values certsync did not publish that it takes over
	// (Target.AdoptExisting): kept when wanted, else in Change.Remove.
	Adopted []string
	// Warning is what people must know before this change is applied
	// (what a removal stops working), as the target says.
	Warning string
	// Certificates is the target's own verdict on each certificate, for a
	// target that judges them itself (verdict.go); nil for the others.
	Certificates []CertVerdict

	target int  // index of the Target
	limit  int  // most values the attribute holds (0: no limit)
	adopt  bool // Target.AdoptExisting
	retry  bool // the outcome may change by trying again soon
	gone   bool // departed, and the account it wrote to is not found (deleted)
	show   func(string) string
}

// Describe shows one of the attribute's values to people, as its target
// says.
func (t *TargetPlan) Describe(v string) string {
	if t.show == nil {
		return v
	}
	return t.show(v)
}

// Changed reports whether any target of the user is to be written.
func (u *UserPlan) Changed() bool {
	for _, t := range u.Targets {
		if t.Problem == "" && t.Change.Changed() {
			return true
		}
	}
	return false
}

// Failed reports whether the user has a problem other than not being in
// a service or being skipped by it, or a write failed.
func (u *UserPlan) Failed() bool {
	if u.Problem != "" {
		return true
	}
	for _, t := range u.Targets {
		if t.Err != nil || (t.Problem != "" && !t.Unmatched && !t.Skipped) {
			return true
		}
	}
	return false
}

// ProblemText is the user's first problem or failure, for a log line.
func (u *UserPlan) ProblemText() string {
	if u.Problem != "" {
		return u.Problem
	}
	for _, t := range u.Targets {
		switch {
		case t.Err != nil:
			return fmt.Sprintf("%s: %v", t.Target, t.Err)
		case t.Problem != "":
			return fmt.Sprintf("%s: %s", t.Target, t.Problem)
		}
	}
	return ""
}

func (u *UserPlan) reportable(mode string) bool {
	if mode == ModeUser || u.Departed || u.Problem != "" || len(u.Rejected) > 0 || len(u.Withheld) > 0 {
		return true
	}
	for _, t := range u.Targets {
		if t.Problem != "" || t.Change.Changed() || len(t.Change.Dropped) > 0 || len(t.Adopted) > 0 || t.holdsForeign() {
			return true
		}
	}
	return false
}

// holdsForeign reports whether the cloud holds values certsync neither
// published nor wants (left by Entra Connect or an admin): they stay, and
// a dry run before a cutover must show them.
func (t *TargetPlan) holdsForeign() bool {
	return slices.ContainsFunc(t.Change.Unowned, func(v string) bool { return !slices.Contains(t.Desired, v) })
}

// PlanOptions say what a plan covers.
type PlanOptions struct {
	// User "" plans every user in scope; otherwise only the user it names
	// (mail, userPrincipalName, sAMAccountName, uid or DN).
	User string
	// Reconcile looks up every user certsync has or wants values for,
	// not only those whose wanted values changed, so that values removed
	// or altered by hand in the cloud are put right.
	Reconcile bool
	// Incremental reads only the users changed since the last pass, when
	// the directory tracks changes and the last full read is recent
	// enough; otherwise it reads everything and says why.
	Incremental bool
	// Reclaim, after a state file was lost: for users the state knows
	// nothing about in a target, the cloud values certsync derives from
	// certificates on their directory entry (accepted or not) are taken
	// as its own (see reclaim.go). Implies Reconcile.
	Reclaim bool
}

func (o PlanOptions) mode() string {
	if o.User != "" {
		return ModeUser
	}
	return ModeFull
}

// Plan reads the directories and the cloud and computes what a pass would
// change, writing nothing but, unless the state file is read-only, the
// certificate chains it verified (a cache, chains.go). An error means no plan can be made (every
// directory failed, the state or the cloud could not be read); a plan
// whose Err is set covers only the directories that could be read.
func (a *Agent) Plan(ctx context.Context, o PlanOptions) (*Plan, error) {
	p := &Plan{Mode: o.mode(), Started: a.now(), tracking: map[string]*tracking{}}
	crls, err := a.revocation(ctx, p.Started)
	if err != nil {
		return nil, err
	}
	n, err := a.store.Count()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	p.Stats.UsersInState = n
	pl := &planner{a: a, p: p, reconcile: o.Reconcile || o.Reclaim, reclaim: o.Reclaim, seen: newAnchorSet(), memo: a.newChainMemo(p.Started),
		settling: a.newSettling(o, crls), keepMarks: a.canWrite(), found: a.newSpill(), dropped: map[string]bool{}}
	defer pl.found.close()
	defer pl.memo.stop() // on the paths that return before flush
	p.settle = map[string]state.Settled{}
	if p.Mode == ModeUser {
		if err := pl.findUser(ctx, o.User); err != nil {
			return nil, err
		}
	} else {
		if err := pl.readAll(ctx, o.Incremental, crls); err != nil {
			return nil, err
		}
	}
	pl.memo.flush()

	p.users = a.newSpill()
	if err := a.settle(ctx, p, pl); err != nil {
		_ = p.Close()
		return nil, err
	}
	if p.Mode != ModeUser {
		a.planTenant(ctx, p, o.Reconcile || o.Reclaim)
	}
	published := p.Stats.UsersInState
	if p.Stats.UsersRemoving > 0 {
		if published, err = a.publishedUsers(); err != nil {
			_ = p.Close()
			return nil, err
		}
	}
	p.Guard = a.guard(p.Stats, published, pl.drops)
	return p, nil
}

// settle takes the users read from pl through the cloud lookups a chunk
// at a time into p's runs, indexing what two users can clash on, then
// settles the clashes (conflicts, duplicates) and counts the plan.
func (a *Agent) settle(ctx context.Context, p *Plan, pl *planner) error {
	if err := pl.found.flush(); err != nil {
		return err
	}
	read := func(yield func(*UserPlan, error) bool) {
		for up, err := range pl.found.scan(0, pl.found.len()) {
			if err == nil && pl.dropped[up.Source] {
				continue
			}
			if !yield(up, err) || err != nil {
				return
			}
		}
	}
	for ti := range a.targets {
		done, err := a.prefetch(ctx, ti, read)
		if err != nil {
			return err
		}
		defer done()
	}
	ix := a.newPlanIndex()
	defer ix.close()
	// With no record in the state, no account is linked to another user.
	ix.noClaims = p.Stats.UsersInState == 0
	chunk := make([]*UserPlan, 0, cloudChunk)
	seq := 0
	flush := func() error {
		p.noteHeld(len(chunk))
		if err := a.resolve(ctx, chunk); err != nil {
			return err
		}
		// Candidates are indexed in the order read, for conflict messages
		// that name users in that order.
		seqs := make(map[*UserPlan]int, len(chunk))
		for _, up := range chunk {
			seqs[up] = seq
			seq++
		}
		slices.SortFunc(chunk, reportOrder)
		start := p.users.len()
		for i, up := range chunk {
			if err := p.users.put(up); err != nil {
				return err
			}
			if up.lookup {
				if err := ix.note(a, up, start+i, seqs[up]); err != nil {
					return err
				}
			}
			p.Stats.tally(up, p.Mode, 1)
		}
		if len(chunk) > 0 {
			p.users.runs = append(p.users.runs, [2]int{start, p.users.len()})
		}
		clear(chunk)
		chunk = chunk[:0]
		return nil
	}
	for up, err := range read {
		if err != nil {
			return err
		}
		chunk = append(chunk, up)
		if len(chunk) == cloudChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := p.users.flush(); err != nil {
		return err
	}
	if err := ix.seal(); err != nil {
		return err
	}
	s := &settler{a: a, p: p}
	if err := s.conflicts(ix); err != nil {
		return err
	}
	if err := s.duplicates(ix); err != nil {
		return err
	}
	s.done()
	return nil
}

// evaluate decides what one source user should have and whether the cloud
// must be consulted: only when that differs from what state says was
// published (or a write is pending, or the last pass had a problem), so a
// pass over an unchanged directory sends no cloud request at all.
// Every user of a pass is judged at the same instant, the pass's start.
// j is the user judged (judge).
func (a *Agent) evaluate(source string, u mapping.SourceUser, j judgement, now time.Time, outOfScope, always, reconcile, reclaim bool) (*UserPlan, bool, time.Time, error) {
	ev := j.ev
	review := nextReview(ev, now)
	up := &UserPlan{Anchor: u.Anchor, Source: source, DN: u.DN, Name: u.Name(), OutOfScope: outOfScope, Rejected: ev.Rejected, Withheld: ev.Withheld, accepted: len(ev.Accepted), expiring: expiringSoon(ev, now),
		mark: settledMark(j.inputs, ev)}
	rec, ok, err := j.rec, j.found, j.err
	if err != nil {
		return nil, false, review, fmt.Errorf("agent: state for %s: %w", up.Name, err)
	}
	up.record, up.hasRecord = rec, ok
	// A record of another directory (the user moved, or the source was
	// renamed) is taken over: writing it notes the new source.
	moved := ok && a.sourceOf(rec) != source
	if moved {
		a.log.Info("user now read from another directory", zap.String("user", up.Name), zap.String("from", rec.Source), zap.String("to", source))
	}
	candidate := always || rec.Problem != "" || moved
	if reclaim {
		up.reclaim = a.reclaimable(source, u.Values, func(attr string) bool {
			tr := rec.Targets[attr]
			return len(tr.Values) > 0 || tr.CloudID != ""
		})
		candidate = candidate || slices.ContainsFunc(up.reclaim, func(v []string) bool { return len(v) > 0 })
	}
	for _, at := range a.attrs {
		var desired []string
		if !outOfScope {
			desired = a.targets[at.target].Want(at.name, source, ev)
		}
		up.Targets = append(up.Targets, a.targetPlan(at, source, desired))
		tr := rec.Targets[at.name]
		if !mapping.SameSet(desired, union(tr.Values, tr.Kept)) || len(tr.Pending) > 0 || (reconcile && (len(desired) > 0 || len(tr.Values) > 0 || at.adopt)) {
			candidate = true
		}
	}
	for _, t := range a.targets {
		up.matchKeys = append(up.matchKeys, u.Attr(t.Match().SourceAttribute))
	}
	// Most users of a pass are unchanged and dropped right here: describe
	// their certificates only for those the plan keeps.
	if candidate || len(up.Rejected) > 0 {
		for _, c := range ev.Accepted {
			up.Accepted = append(up.Accepted, certInfo(c))
		}
		for _, v := range ev.Values {
			up.Values = append(up.Values, ValueInfo{Attribute: v.Attribute, SHA256: v.SHA256, PKCS7: v.Bag, Certificates: v.Certificates})
		}
		for _, tp := range up.Targets {
			if j, ok := a.targets[tp.target].(certificateJudge); ok && !outOfScope {
				tp.Certificates = j.Verdicts(tp.Target, source, ev)
			}
		}
	}
	return up, candidate, review, nil
}

// judgement is the part of a user's evaluation that needs nothing of the
// other users: its certificates decoded and checked, its state record.
type judgement struct {
	ev    mapping.Evaluation
	rec   state.Record
	found bool  // rec was in the state
	err   error // reading the state failed
	// inputs digests what judged the user (settled.go); zero when the
	// pass does not use settled marks.
	inputs [sha256.Size]byte
	// settled: the user's mark holds, and nothing else was looked at.
	settled *state.Settled
}

// judge makes u's judgement.
func (a *Agent) judge(source string, u mapping.SourceUser, now time.Time, memo *chainMemo, settle *settling) judgement {
	var j [1]judgement
	a.judgeAll(source, []mapping.SourceUser{u}, j[:], now, memo, settle)
	return j[0]
}

// judgeAll makes the judgements of users, read together from source, in
// js; it runs on every core while the directory is read (pipeline). The
// state is read a batch at a time (a transaction per user cost as much
// as the lookups), and certificates are checked after those reads, not
// inside them: the chain memo's own reads inside a read transaction
// could wait for a writer that waits for that transaction to end.
func (a *Agent) judgeAll(source string, users []mapping.SourceUser, js []judgement, now time.Time, memo *chainMemo, settle *settling) {
	a.settledJudgements(settle, source, users, js, now)
	var anchors []string
	var unsettled []int
	for i := range users {
		if js[i].settled == nil {
			anchors = append(anchors, users[i].Anchor)
			unsettled = append(unsettled, i)
		}
	}
	a.store.Records(anchors, func(k int, r state.Record, found bool, err error) {
		j := &js[unsettled[k]]
		j.rec, j.found, j.err = r, found, err
	})
	for _, i := range unsettled {
		u := users[i]
		pol := a.policy
		// A certificate whose SID extension names another account is no
		// user's here (mapping/sid.go).
		pol.AccountSID = u.Attr(attrObjectSID)
		pol.AccountIdentities = mapping.UserIdentities(u) // mapping/identity.go
		js[i].ev = mapping.EvaluateRemembering(u.Values, pol, now, memo.memo())
	}
}

func (a *Agent) targetPlan(at attrSpec, source string, desired []string) *TargetPlan {
	t := a.targets[at.target]
	name := at.name
	limit := at.limit
	if sl, ok := t.(sourceLimiter); ok {
		limit = sl.LimitFor(name, source)
	}
	return &TargetPlan{Target: name, target: at.target, limit: limit, adopt: at.adopt, Desired: desired, show: a.describer(at.target, name)}
}

// describer shows attribute name's values of target ti to people.
func (a *Agent) describer(ti int, name string) func(string) string {
	t := a.targets[ti]
	return func(v string) string { return t.Describe(name, v) }
}

// sourceLimiter is a target whose attributes hold a different number of
// values depending on the directory a user was read from (each directory
// configures its own).
type sourceLimiter interface {
	LimitFor(attr, source string) int
}

// removalWarner is a target whose removals have consequences people must
// read before they apply a plan (a smart card that stops logging on).
type removalWarner interface {
	RemovalWarning(attr string) string
}

// resolve looks a chunk of users up in each target and computes their
// changes (users that are only reported are left as they are). The
// caller goes cloudChunk users at a time, so that what the cloud answers
// (whole accounts, most of it not kept) never piles up for the whole
// directory.
func (a *Agent) resolve(ctx context.Context, chunk []*UserPlan) error {
	for ti, t := range a.targets {
		var lookups []cloudsink.Lookup
		for _, up := range chunk {
			if !up.lookup {
				continue
			}
			if l, ok := a.lookupFor(ti, up); ok {
				lookups = append(lookups, l)
			}
		}
		var found map[string]cloudsink.LookupResult
		if len(lookups) > 0 {
			var err error
			found, err = t.Lookup(ctx, lookups)
			if err != nil {
				return fmt.Errorf("agent: looking up %d users in %s: %w", len(lookups), t.Name(), err)
			}
		}
		for _, up := range chunk {
			if up.lookup {
				a.diffUser(ti, up, found)
			}
		}
	}
	return nil
}

// bulkLookup is a Target that reads many accounts more cheaply at once
// than one by one (Exchange: paged listings); it decides from the lookups
// whether to, and answers the pass's Lookups from what it read until
// done.
type bulkLookup interface {
	Prefetch(ctx context.Context, lookups []cloudsink.Lookup) (done func(), err error)
}

// prefetch hands every lookup of the pass to a bulkLookup target.
func (a *Agent) prefetch(ctx context.Context, ti int, users iter.Seq2[*UserPlan, error]) (func(), error) {
	bl, ok := a.targets[ti].(bulkLookup)
	if !ok {
		return func() {}, nil
	}
	var lookups []cloudsink.Lookup
	for up, err := range users {
		if err != nil {
			return nil, err
		}
		if !up.lookup {
			continue
		}
		if l, ok := a.lookupFor(ti, up); ok {
			lookups = append(lookups, l)
		}
	}
	done, err := bl.Prefetch(ctx, lookups)
	if err != nil {
		return nil, fmt.Errorf("agent: reading %d users' accounts in %s at once: %w", len(lookups), a.targets[ti].Name(), err)
	}
	return done, nil
}

// cloudChunk is how many users go to a target in one Lookup or Apply
// call: large enough to keep its $batch requests full and in flight,
// small enough that the requests and answers of one call stay a few
// megabytes.
const cloudChunk = 500

// lookupFor says how to find the user's account in target ti: by the
// match attribute while the directory still has the user, else by the
// cloud id certsync wrote to.
func (a *Agent) lookupFor(ti int, up *UserPlan) (cloudsink.Lookup, bool) {
	if up.Problem != "" {
		return cloudsink.Lookup{}, false
	}
	if !up.Departed {
		if v := up.matchKeys[ti]; v != "" {
			var wanted []string
			for _, t := range up.Targets {
				if t.target == ti {
					wanted = append(wanted, t.Desired...)
				}
			}
			return cloudsink.Lookup{Key: lookupKey(up), Source: up.Source, Property: a.targets[ti].Match().CloudProperty, Value: v, Wanted: wanted}, true
		}
		return cloudsink.Lookup{}, false
	}
	for _, t := range up.Targets {
		if t.target != ti {
			continue
		}
		if tr := up.record.Targets[t.Target]; tr.CloudID != "" {
			return cloudsink.Lookup{Key: lookupKey(up), Source: up.Source, Property: "id", Value: tr.CloudID}, true
		}
	}
	return cloudsink.Lookup{}, false
}

// lookupKey keys a user's lookup: its anchor, unique within a plan.
func lookupKey(up *UserPlan) string { return up.Anchor }

func (a *Agent) diffUser(ti int, up *UserPlan, found map[string]cloudsink.LookupResult) {
	if up.Problem != "" {
		return
	}
	t := a.targets[ti]
	m := t.Match()
	var acct *cloudsink.Account
	problem, unmatched, retry, gone := "", false, false, false
	r := found[lookupKey(up)]
	switch {
	case !up.Departed && up.matchKeys[ti] == "":
		problem, unmatched = fmt.Sprintf("has no %s to find its %s by", m.SourceAttribute, t.Account()), true
	case up.Departed && r.Account == nil && r.Err == nil:
		// Nothing was ever written for it in this target.
	case r.Account != nil:
		acct = r.Account
	case errors.Is(r.Err, cloudsink.ErrNotFound) && up.Departed:
		// The cloud account is gone too: nothing to withdraw now, but it
		// may be only soft-deleted and come back with the values
		// (finalRecord keeps them).
		gone = true
	case errors.Is(r.Err, cloudsink.ErrNotFound):
		problem, unmatched = fmt.Sprintf("no %s with %s %s", t.Account(), m.CloudProperty, up.matchKeys[ti]), true
	case r.Err != nil:
		problem = fmt.Sprintf("lookup by %s failed: %v", m.CloudProperty, r.Err)
		retry = !refused(r.Err)
	default:
		problem, retry = "the service did not answer for this user", true
	}
	for i, tp := range up.Targets {
		if tp.target != ti {
			continue
		}
		tp.Problem, tp.Unmatched, tp.retry, tp.gone = problem, unmatched, retry, gone
		if acct == nil {
			continue
		}
		tp.CloudID, tp.CloudName = acct.ID, acct.UserPrincipalName
		tr := up.record.Targets[tp.Target]
		current := acct.Values[tp.Target]
		published := tr.Values
		if tr.CloudID != "" && tr.CloudID != acct.ID {
			// The user now matches another account: what was published
			// went to the old one and is not ours here.
			a.log.Warn("user matches a different account than before; values published to the old one are left there",
				zap.String("user", up.Name), zap.String("target", tp.Target), zap.String("old", tr.CloudID), zap.String("new", acct.ID))
			published = nil
		}
		// A write that may or may not have landed before a crash: what of
		// it the cloud holds is ours.
		published = union(published, intersect(tr.Pending, current))
		if up.reclaim != nil {
			for _, v := range intersect(up.reclaim[i], current) {
				if !slices.Contains(published, v) {
					tp.Adopted = append(tp.Adopted, v)
					published = append(published, v)
				}
			}
		}
		if tp.adopt {
			for _, v := range current {
				if !slices.Contains(published, v) {
					tp.Adopted = append(tp.Adopted, v)
				}
			}
			published = union(published, tp.Adopted)
		}
		tp.Change = mapping.Diff(tp.Desired, published, current, tp.limit)
		if acct.Refusal != "" && tp.Change.Changed() {
			tp.Problem, tp.Skipped = acct.Refusal, true
			tp.Change = mapping.TargetChange{Unowned: tp.Change.Unowned}
		}
		if rw, ok := t.(removalWarner); ok && len(tp.Change.Remove) > 0 {
			tp.Warning = rw.RemovalWarning(tp.Target)
		}
	}
}

// tally adds (sign 1) or takes back (-1) what a user of a plan in mode
// counts for in the plan's figures: only users worth showing count.
func (s *Stats) tally(u *UserPlan, mode string, sign int) {
	if !u.reportable(mode) {
		return
	}
	removing, unmatched, skipped := false, false, false
	for _, t := range u.Targets {
		if t.Problem != "" {
			unmatched = unmatched || t.Unmatched
			skipped = skipped || t.Skipped
			continue
		}
		s.ValuesAdded += sign * len(t.Change.Add)
		s.ValuesRemoved += sign * len(t.Change.Remove)
		// A renewal (one value out, its successor in) is no loss: the
		// guard counts users left with fewer values.
		removing = removing || len(t.Change.Remove) > len(t.Change.Add)
	}
	one := func(n *int, on bool) {
		if on {
			*n += sign
		}
	}
	one(&s.UsersChanged, u.Changed())
	one(&s.UsersRemoving, removing)
	one(&s.UsersUnmatched, unmatched)
	one(&s.UsersSkipped, skipped)
	one(&s.UsersFailed, u.Failed())
}

// resetOutcome zeroes the figures tally counts.
func (s *Stats) resetOutcome() {
	s.UsersChanged, s.UsersRemoving, s.UsersUnmatched, s.UsersSkipped, s.UsersFailed, s.ValuesAdded, s.ValuesRemoved = 0, 0, 0, 0, 0, 0, 0
}

func certInfo(c mapping.Certificate) CertInfo {
	return CertInfo{
		Subject:    c.Cert.Subject.String(),
		Serial:     strings.ToUpper(c.Cert.SerialNumber.Text(16)),
		SHA256:     c.SHA256,
		NotBefore:  c.Cert.NotBefore,
		NotAfter:   c.Cert.NotAfter,
		Attributes: c.Attributes,
		Warnings:   c.Warnings,
		SID:        certSID(c.Cert),
	}
}

func certSID(c *x509.Certificate) string {
	sid, _, err := mapping.CertificateSID(c)
	if err != nil {
		return ""
	}
	return sid
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, v := range b {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func intersect(a, b []string) []string {
	var out []string
	for _, v := range a {
		if slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}
