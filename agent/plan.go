package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/ldapsrc"
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
// written. It lists only users worth showing: those with changes,
// problems or rejected certificates (and, in user mode, the one user).
type Plan struct {
	Mode    string
	Started time.Time
	Users   []*UserPlan // sorted by Name, then Anchor
	Stats   Stats
	Guard   Guard
	// FullReason says why a pass asked to be incremental read everything.
	FullReason string

	// tracking is committed with the results; nil in user mode.
	tracking *tracking
	// quiet are users looked up in the cloud with nothing to show or
	// write; their state may still have news (values found already in
	// place), so Apply records them too.
	quiet []*UserPlan

	// forget lists anchors whose state records hold nothing certsync
	// published and whose users the directory no longer returns.
	forget []string
}

// Stats counts a plan and, once applied, its outcome.
type Stats struct {
	UsersRead            int // from the directory
	LDAPOperations       int // requests sent to the directory
	UsersInState         int // before the pass
	UsersChanged         int // with at least one cloud write planned (or done)
	UsersRemoving        int // losing at least one value (the guard counts these)
	UsersUnmatched       int // no cloud account
	UsersFailed          int // refused, ambiguous, lookup or write failed
	ValuesAdded          int
	ValuesRemoved        int
	CertificatesAccepted int
	CertificatesRejected int
}

// Guard is the verdict of the deletion limit on this plan.
type Guard struct {
	Tripped          bool
	Reason           string
	UsersRemoving    int
	UsersInState     int
	MaxDeletes       int
	MaxDeletePercent int
}

// UserPlan is one user's part of a plan.
type UserPlan struct {
	Anchor string
	DN     string
	Name   string
	// Departed: certsync published for this user before, but the
	// directory no longer returns it (deleted, or out of the filter).
	Departed bool
	// OutOfScope (user mode): found, but outside the configured filter.
	OutOfScope bool
	Accepted   []CertInfo
	Rejected   []mapping.Rejection
	Targets    []*TargetPlan
	// Problem is a user-level problem (no value to match on, ...).
	Problem string

	record    state.Record
	hasRecord bool
	accepted  int      // certificates accepted, counted even when Accepted is not kept
	matchKeys []string // per sink: the value looked up ("" = none)
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
}

// TargetPlan is one target of one user: what certsync wants there, what
// the cloud holds, and the change.
type TargetPlan struct {
	Target    string
	CloudID   string
	CloudName string // userPrincipalName, for people
	Desired   []string
	Change    mapping.TargetChange
	// Problem says why this target cannot be written (no cloud account,
	// refused, ...); Change is then empty.
	Problem string
	// Unmatched: no cloud account matches (reported, not a failure).
	Unmatched bool
	// Applied / Err are set by Apply.
	Applied bool
	Err     error

	// Adopted are values certsync did not publish that it takes over
	// (SinkSpec.AdoptExisting): kept when wanted, else in Change.Remove.
	Adopted []string

	sink         int
	limit        int  // most values the target holds (0: no limit)
	adopt        bool // SinkSpec.AdoptExisting
	lookupFailed bool // the cloud lookup failed: worth retrying soon
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
// the cloud, or a write failed.
func (u *UserPlan) Failed() bool {
	if u.Problem != "" {
		return true
	}
	for _, t := range u.Targets {
		if t.Err != nil || (t.Problem != "" && !t.Unmatched) {
			return true
		}
	}
	return false
}

func (u *UserPlan) reportable(mode string) bool {
	if mode == ModeUser || u.Departed || u.Problem != "" || len(u.Rejected) > 0 {
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
}

func (o PlanOptions) mode() string {
	if o.User != "" {
		return ModeUser
	}
	return ModeFull
}

// Plan reads the directory and the cloud and computes what a pass would
// change, writing nothing. An error means the plan is incomplete and must
// not be applied.
func (a *Agent) Plan(ctx context.Context, o PlanOptions) (*Plan, error) {
	p := &Plan{Mode: o.mode(), Started: a.now()}
	userID := o.User
	crls := a.revocation(ctx, p.Started)
	n, err := a.store.Count()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	p.Stats.UsersInState = n

	var candidates []*UserPlan
	var reportOnly []*UserPlan
	consider := func(u mapping.SourceUser, outOfScope bool) (time.Time, error) {
		up, candidate, review, err := a.evaluate(u, p.Started, outOfScope, p.Mode == ModeUser, o.Reconcile)
		if err != nil {
			return time.Time{}, err
		}
		p.Stats.CertificatesAccepted += up.accepted
		p.Stats.CertificatesRejected += len(up.Rejected)
		switch {
		case candidate:
			candidates = append(candidates, up)
		case up.reportable(p.Mode):
			reportOnly = append(reportOnly, up)
		}
		return review, nil
	}

	if p.Mode == ModeUser {
		found, err := a.src.FindUser(ctx, userID)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		p.Stats.UsersRead = 1
		if _, err := consider(found.User, !found.InScope); err != nil {
			return nil, err
		}
	} else {
		more, err := a.readDirectory(ctx, p, o.Incremental, crls, consider)
		if err != nil {
			return nil, err
		}
		candidates = append(candidates, more...)
	}

	if err := a.resolve(ctx, candidates); err != nil {
		return nil, err
	}
	for _, up := range candidates {
		if up.reportable(p.Mode) {
			p.Users = append(p.Users, up)
		} else {
			p.quiet = append(p.quiet, up)
		}
	}
	p.Users = append(p.Users, reportOnly...)
	sort.Slice(p.Users, func(i, j int) bool {
		if p.Users[i].Name != p.Users[j].Name {
			return p.Users[i].Name < p.Users[j].Name
		}
		return p.Users[i].Anchor < p.Users[j].Anchor
	})
	p.count()
	p.Guard = a.guard(p.Stats)
	return p, nil
}

// readDirectory reads the users of a full or incremental pass, passing
// each to consider, and returns the departed users to withdraw values
// from. It sets the plan's mode, reason and the tracking record to commit
// with its results.
func (a *Agent) readDirectory(ctx context.Context, p *Plan, incremental bool, crls string, consider func(mapping.SourceUser, bool) (time.Time, error)) ([]*UserPlan, error) {
	var tr tracking
	found, err := a.store.Meta(metaTracking, &tr)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	var since []byte
	if incremental {
		since, p.FullReason = a.sinceFor(tr, found, p.Started, crls)
	}
	var review time.Time
	seen := map[string]struct{}{}
	res, err := a.src.Read(ctx, ldapsrc.ReadRequest{Since: since}, func(u mapping.SourceUser) error {
		if _, dup := seen[u.Anchor]; dup {
			a.log.Warn("the directory returned a user twice; the second copy is ignored",
				zap.String("anchor", u.Anchor), zap.String("dn", u.DN))
			return nil
		}
		seen[u.Anchor] = struct{}{}
		r, err := consider(u, false)
		review = earlier(review, r)
		return err
	})
	switch {
	case err != nil && res.Entries == 0:
		return nil, fmt.Errorf("agent: reading the directory: %w; nothing will be changed", err)
	case err != nil:
		// An incomplete read must never look like users without
		// certificates: the whole plan is void.
		return nil, fmt.Errorf("agent: directory read incomplete after %d users, nothing will be changed: %w", res.Entries, err)
	}
	p.Stats.UsersRead = len(seen)
	p.Stats.LDAPOperations = res.Operations

	next := tracking{Version: trackingVersion, Fingerprint: a.track.Fingerprint, CRLs: crls, Watermark: res.Next, FullAt: tr.FullAt}
	var departed []*UserPlan
	if res.Full {
		if since != nil && res.Reason != "" {
			p.FullReason = res.Reason
		}
		next.FullAt, next.NextReview = p.Started, review
		if departed, p.forget, err = a.departed(seen); err != nil {
			return nil, err
		}
	} else {
		// Users not read keep the review times found when they were.
		p.Mode, next.NextReview = ModeIncremental, earlier(tr.NextReview, review)
		if departed, err = a.deleted(res.Deleted, seen); err != nil {
			return nil, err
		}
	}
	if a.policy.CheckRevocation {
		// A stale CRL changes verdicts under revocationUnavailable:
		// reject, so its nextUpdate is a review time too.
		next.NextReview = earlier(next.NextReview, a.policy.Revocation.NextUpdate())
	}
	if p.FullReason != "" {
		a.log.Info("reading every user", zap.String("reason", p.FullReason))
	}
	p.tracking = &next
	return departed, nil
}

// evaluate decides what one source user should have and whether the cloud
// must be consulted: only when that differs from what state says was
// published (or a write is pending, or the last pass had a problem), so a
// pass over an unchanged directory sends no cloud request at all.
// Every user of a pass is judged at the same instant, the pass's start.
func (a *Agent) evaluate(u mapping.SourceUser, now time.Time, outOfScope, always, reconcile bool) (*UserPlan, bool, time.Time, error) {
	ev := mapping.Evaluate(u.Values, a.policy, now)
	review := nextReview(ev, now)
	up := &UserPlan{Anchor: u.Anchor, DN: u.DN, Name: u.Name(), OutOfScope: outOfScope, Rejected: ev.Rejected, accepted: len(ev.Accepted)}
	rec, ok, err := a.store.Get(u.Anchor)
	if err != nil {
		return nil, false, review, fmt.Errorf("agent: state for %s: %w", up.Name, err)
	}
	up.record, up.hasRecord = rec, ok
	candidate := always || rec.Problem != ""
	for _, t := range a.targets {
		var desired []string
		if !outOfScope {
			desired = t.desired(ev)
		}
		up.Targets = append(up.Targets, &TargetPlan{Target: t.name, sink: t.sink, limit: t.limit, adopt: t.adopt, Desired: desired})
		tr := rec.Targets[t.name]
		if !mapping.SameSet(desired, union(tr.Values, tr.Kept)) || len(tr.Pending) > 0 || (reconcile && (len(desired) > 0 || len(tr.Values) > 0 || t.adopt)) {
			candidate = true
		}
	}
	for _, s := range a.sinks {
		up.matchKeys = append(up.matchKeys, u.Attr(s.Match.SourceAttribute))
	}
	// Most users of a pass are unchanged and dropped right here: describe
	// their certificates only for those the plan keeps.
	if candidate || len(up.Rejected) > 0 {
		for _, c := range ev.Accepted {
			up.Accepted = append(up.Accepted, certInfo(c))
		}
	}
	return up, candidate, review, nil
}

// departed finds users certsync published for that the directory did not
// return: their values are withdrawn. Only a complete read gets here.
func (a *Agent) departed(seen map[string]struct{}) ([]*UserPlan, []string, error) {
	var out []*UserPlan
	var forget []string
	err := a.store.ForEach(func(rec state.Record) error {
		if _, ok := seen[rec.Anchor]; ok {
			return nil
		}
		if !holdsValues(rec) {
			forget = append(forget, rec.Anchor)
			return nil
		}
		out = append(out, a.departedUser(rec))
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("agent: reading state: %w", err)
	}
	return out, forget, nil
}

// deleted turns the anchors an incremental read reported deleted into
// departed users, for those certsync published for.
func (a *Agent) deleted(anchors []string, seen map[string]struct{}) ([]*UserPlan, error) {
	var out []*UserPlan
	for _, anchor := range anchors {
		if _, ok := seen[anchor]; ok {
			continue // deleted and re-created (or restored) in one interval
		}
		rec, ok, err := a.store.Get(anchor)
		if err != nil {
			return nil, fmt.Errorf("agent: reading state: %w", err)
		}
		if ok && holdsValues(rec) {
			out = append(out, a.departedUser(rec))
		}
	}
	return out, nil
}

func (a *Agent) departedUser(rec state.Record) *UserPlan {
	up := &UserPlan{Anchor: rec.Anchor, DN: rec.DN, Name: rec.Name, Departed: true, record: rec, hasRecord: true}
	if up.Name == "" {
		up.Name = rec.DN
	}
	for _, t := range a.targets {
		up.Targets = append(up.Targets, &TargetPlan{Target: t.name, sink: t.sink, limit: t.limit, adopt: t.adopt})
	}
	return up
}

func holdsValues(rec state.Record) bool {
	for _, tr := range rec.Targets {
		if len(tr.Values) > 0 || len(tr.Pending) > 0 {
			return true
		}
	}
	return false
}

// resolve looks the candidates up in each sink and computes their changes.
// It goes cloudChunk users at a time, so that what the cloud answers (whole
// accounts, most of it not kept) never piles up for the whole directory.
func (a *Agent) resolve(ctx context.Context, candidates []*UserPlan) error {
	for si, s := range a.sinks {
		for chunk := range slices.Chunk(candidates, cloudChunk) {
			var lookups []cloudsink.Lookup
			for _, up := range chunk {
				if l, ok := a.lookupFor(si, up); ok {
					lookups = append(lookups, l)
				}
			}
			var found map[string]cloudsink.LookupResult
			if len(lookups) > 0 {
				var err error
				found, err = s.Sink.Lookup(ctx, lookups)
				if err != nil {
					return fmt.Errorf("agent: looking up %d users in the cloud: %w", len(lookups), err)
				}
			}
			for _, up := range chunk {
				a.diffUser(si, up, found)
			}
		}
	}
	return nil
}

// cloudChunk is how many users go to a sink in one Lookup or Apply call:
// large enough to keep its $batch requests full and in flight, small
// enough that the requests and answers of one call stay a few megabytes.
const cloudChunk = 1000

// lookupFor says how to find the user's account in sink si: by the match
// attribute while the directory still has the user, else by the cloud id
// certsync wrote to.
func (a *Agent) lookupFor(si int, up *UserPlan) (cloudsink.Lookup, bool) {
	if !up.Departed {
		if v := up.matchKeys[si]; v != "" {
			return cloudsink.Lookup{Key: up.Anchor, Property: a.sinks[si].Match.CloudProperty, Value: v}, true
		}
		return cloudsink.Lookup{}, false
	}
	for _, t := range up.Targets {
		if t.sink != si {
			continue
		}
		if tr := up.record.Targets[t.Target]; tr.CloudID != "" {
			return cloudsink.Lookup{Key: up.Anchor, Property: "id", Value: tr.CloudID}, true
		}
	}
	return cloudsink.Lookup{}, false
}

func (a *Agent) diffUser(si int, up *UserPlan, found map[string]cloudsink.LookupResult) {
	m := a.sinks[si].Match
	var acct *cloudsink.Account
	problem, unmatched, lookupFailed := "", false, false
	switch {
	case !up.Departed && up.matchKeys[si] == "":
		problem, unmatched = fmt.Sprintf("has no %s to find its cloud account by", m.SourceAttribute), true
	case up.Departed && found[up.Anchor].Account == nil && found[up.Anchor].Err == nil:
		// Nothing was ever written for it in this sink.
	default:
		r := found[up.Anchor]
		switch {
		case r.Account != nil:
			acct = r.Account
		case errors.Is(r.Err, cloudsink.ErrNotFound) && up.Departed:
			// The cloud account is gone too: nothing left to withdraw.
		case errors.Is(r.Err, cloudsink.ErrNotFound):
			noun := a.sinks[si].Account
			if noun == "" {
				noun = "cloud user"
			}
			problem, unmatched = fmt.Sprintf("no %s with %s %s", noun, m.CloudProperty, up.matchKeys[si]), true
		case r.Err != nil:
			problem = fmt.Sprintf("cloud lookup by %s failed: %v", m.CloudProperty, r.Err)
			lookupFailed = !refused(r.Err)
		default:
			problem, lookupFailed = "the cloud did not answer for this user", true
		}
	}
	for _, t := range up.Targets {
		if t.sink != si {
			continue
		}
		t.Problem, t.Unmatched, t.lookupFailed = problem, unmatched, lookupFailed
		if acct == nil {
			continue
		}
		t.CloudID, t.CloudName = acct.ID, acct.UserPrincipalName
		tr := up.record.Targets[t.Target]
		current := acct.Values[t.Target]
		published := tr.Values
		if tr.CloudID != "" && tr.CloudID != acct.ID {
			// The user now matches another cloud account: what was
			// published went to the old one and is not ours here.
			a.log.Warn("user matches a different cloud account than before; values published to the old one are left there",
				zap.String("user", up.Name), zap.String("old", tr.CloudID), zap.String("new", acct.ID))
			published = nil
		}
		// A write that may or may not have landed before a crash: what of
		// it the cloud holds is ours.
		published = union(published, intersect(tr.Pending, current))
		if t.adopt {
			for _, v := range current {
				if !slices.Contains(published, v) {
					t.Adopted = append(t.Adopted, v)
				}
			}
			published = union(published, t.Adopted)
		}
		t.Change = mapping.Diff(t.Desired, published, current, t.limit)
		if acct.Refusal != "" && t.Change.Changed() {
			t.Problem = acct.Refusal
			t.Change = mapping.TargetChange{Unowned: t.Change.Unowned}
		}
	}
}

func (p *Plan) count() {
	s := &p.Stats
	s.UsersChanged, s.UsersRemoving, s.UsersUnmatched, s.UsersFailed, s.ValuesAdded, s.ValuesRemoved = 0, 0, 0, 0, 0, 0
	for _, u := range p.Users {
		removing, unmatched := false, false
		for _, t := range u.Targets {
			if t.Problem != "" {
				unmatched = unmatched || t.Unmatched
				continue
			}
			s.ValuesAdded += len(t.Change.Add)
			s.ValuesRemoved += len(t.Change.Remove)
			removing = removing || len(t.Change.Remove) > 0
		}
		if u.Changed() {
			s.UsersChanged++
		}
		if removing {
			s.UsersRemoving++
		}
		if unmatched {
			s.UsersUnmatched++
		}
		if u.Failed() {
			s.UsersFailed++
		}
	}
}

// guard applies the deletion limit (DESIGN.md §3).
func (a *Agent) guard(s Stats) Guard {
	g := Guard{UsersRemoving: s.UsersRemoving, UsersInState: s.UsersInState, MaxDeletes: a.safety.MaxDeletes, MaxDeletePercent: a.safety.MaxDeletePercent}
	var why []string
	if g.MaxDeletes > 0 && g.UsersRemoving > g.MaxDeletes {
		why = append(why, fmt.Sprintf("%d users would lose certificates, more than safety.maxDeletes (%d)", g.UsersRemoving, g.MaxDeletes))
	}
	// The percent limit never forbids touching a single user: in a small
	// directory one certificate rotation would otherwise stop every pass.
	if limit := max(1, g.MaxDeletePercent*g.UsersInState/100); g.MaxDeletePercent > 0 && g.UsersRemoving > limit {
		why = append(why, fmt.Sprintf("%d of %d users known to certsync would lose certificates, more than safety.maxDeletePercent (%d%%, %d users)", g.UsersRemoving, g.UsersInState, g.MaxDeletePercent, limit))
	}
	if len(why) > 0 {
		g.Tripped = true
		g.Reason = strings.Join(why, "; ")
	}
	return g
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
	}
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
