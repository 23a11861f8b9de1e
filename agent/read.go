package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// planner collects one plan's users as the directories are read.
type planner struct {
	a         *Agent
	p         *Plan
	reconcile bool
	reclaim   bool // PlanOptions.Reclaim
	// found are the users read, in the order read: candidates (to look
	// up in the cloud, UserPlan.lookup) and users only to report.
	found *spill
	// dropped are the sources whose read failed: their users in found
	// are left out of the plan.
	dropped map[string]bool
	// seen maps every anchor read in this pass to its source, so that a
	// user read from two directories is caught and a user that moved
	// between directories is not taken as departed from the old one.
	seen *anchorSet
	// memo remembers verified certificate chains; nil verifies every time.
	memo *chainMemo
	// drops are full reads where most published users lost every
	// certificate at once (checkSight): they trip the deletion guard.
	drops []string
	// settling decides which users' settled marks the pass trusts.
	settling *settling
	// keepMarks: the store takes writes, so the marks users earn are
	// kept and written; a dry run's snapshot takes none, and holding
	// them would only grow with the directory.
	keepMarks bool
}

// consider evaluates one user read from source, judged as j, and files
// it.
func (pl *planner) consider(source string, u mapping.SourceUser, j judgement, outOfScope bool) (time.Time, error) {
	if len(u.Unread) > 0 {
		pl.p.Stats.CertificatesRejected += len(u.Unread)
		return time.Time{}, pl.found.put(unreadPlan(source, u))
	}
	if j.settled != nil {
		pl.p.settled++
		accepted, expiring, review := settledStats(j.settled, pl.p.Started)
		pl.p.Stats.CertificatesAccepted += accepted
		pl.p.Stats.CertificatesExpiringSoon += expiring
		return review, nil
	}
	up, candidate, review, err := pl.a.evaluate(source, u, j, pl.p.Started, outOfScope, pl.p.Mode == ModeUser, pl.reconcile, pl.reclaim)
	if err != nil {
		return time.Time{}, err
	}
	pl.p.Stats.CertificatesAccepted += up.accepted
	pl.p.Stats.CertificatesExpiringSoon += up.expiring
	pl.p.Stats.CertificatesRejected += len(up.Rejected)
	switch {
	case candidate:
		up.lookup = true
		err = pl.found.put(up)
	case up.reportable(pl.p.Mode):
		err = pl.found.put(up)
	case up.mark != nil && up.hasRecord && pl.keepMarks:
		// Left alone and in line: the next pass may skip it. Such a
		// user's record is not written by this pass, so its mark holds
		// whatever the pass does: written as they come (a cache, like
		// the chains), they never pile up.
		pl.p.settle[up.Anchor] = *up.mark
		if len(pl.p.settle) >= settledFlush {
			pl.a.writeSettled(pl.p.settle)
			clear(pl.p.settle)
		}
	}
	return review, err
}

// candidates adds users to look up in the cloud.
func (pl *planner) candidates(ups ...*UserPlan) error {
	for _, up := range ups {
		up.lookup = true
		if err := pl.found.put(up); err != nil {
			return err
		}
	}
	return nil
}

// findUser plans the one user --user names. It is looked for in every
// directory: found in two, the name is ambiguous; found in none while a
// directory could not be searched, nothing can be said.
func (pl *planner) findUser(ctx context.Context, id string) error {
	type hit struct {
		source string
		found  ldapsrc.FoundUser
	}
	var hits []hit
	var errs []error
	for _, s := range pl.a.sources {
		found, err := s.Source.FindUser(ctx, id)
		switch {
		case errors.Is(err, ldapsrc.ErrUserNotFound):
			pl.p.Sources = append(pl.p.Sources, SourceReport{Name: s.Name, Mode: ModeUser})
		case err != nil:
			errs = append(errs, fmt.Errorf("directory %s: %w", s.Name, err))
			pl.p.Sources = append(pl.p.Sources, SourceReport{Name: s.Name, Mode: ModeUser, Err: err})
		default:
			hits = append(hits, hit{s.Name, found})
			pl.p.Sources = append(pl.p.Sources, SourceReport{Name: s.Name, Mode: ModeUser, UsersRead: 1})
		}
	}
	switch {
	case len(hits) > 1:
		var where []string
		for _, h := range hits {
			where = append(where, fmt.Sprintf("%s (%s)", h.found.User.DN, h.source))
		}
		return fmt.Errorf("agent: %q names a user in more than one directory: %s; name it by DN", id, strings.Join(where, ", "))
	case len(hits) == 0 && len(errs) > 0:
		return fmt.Errorf("agent: %w", errors.Join(errs...))
	case len(hits) == 0:
		return fmt.Errorf("agent: %w: %q", ldapsrc.ErrUserNotFound, id)
	}
	for _, e := range errs {
		pl.a.log.Warn("a directory could not be searched for the user", zap.Error(e))
	}
	pl.p.Stats.UsersRead = 1
	u := hits[0].found.User
	_, err := pl.consider(hits[0].source, u, pl.a.judge(hits[0].source, u, pl.p.Started, pl.memo, nil), !hits[0].found.InScope)
	return err
}

// readAll reads every directory. A directory whose read fails is left out
// of the plan (its SourceReport says why); when every one fails, there is
// no plan.
func (pl *planner) readAll(ctx context.Context, incremental bool, crls string) error {
	// Only the reads and the search for departed users need it.
	defer pl.seen.free()
	type fullRead struct {
		source string
		i      int // index in p.Sources
	}
	var full []fullRead
	var deleted [][2]string // (source, anchor) reported deleted by incremental reads
	failed := 0
	for _, s := range pl.a.sources {
		rep, res, err := pl.readSource(ctx, s, incremental, crls)
		pl.p.Sources = append(pl.p.Sources, rep)
		if pe := (*passError)(nil); errors.As(err, &pe) {
			return pe.err
		}
		if err != nil {
			failed++
			pl.a.log.Error("directory read failed: its users are left as they are", zap.String("source", s.Name), zap.Error(err))
			continue
		}
		pl.p.Stats.UsersRead += rep.UsersRead
		pl.p.Stats.LDAPOperations += rep.LDAPOperations
		if res.Full {
			full = append(full, fullRead{s.Name, len(pl.p.Sources) - 1})
		}
		for _, anchor := range res.Deleted {
			deleted = append(deleted, [2]string{s.Name, anchor})
		}
	}
	if failed == len(pl.a.sources) {
		return pl.p.Err()
	}
	pl.p.Mode = ModeIncremental
	var reasons []string
	for _, r := range pl.p.Sources {
		if r.Err == nil && r.Mode == ModeFull {
			pl.p.Mode = ModeFull
		}
		if r.FullReason != "" {
			reasons = append(reasons, r.FullReason)
			if len(pl.a.sources) > 1 {
				reasons[len(reasons)-1] = r.Name + ": " + r.FullReason
			}
		}
	}
	pl.p.FullReason = strings.Join(reasons, "; ")

	// Departed users are found once every directory has been read, so a
	// user that moved from one directory to another is not withdrawn.
	orphans := map[string]int{}
	for _, f := range full {
		departed, forget, err := pl.a.departed(f.source, pl.seen, orphans)
		if err != nil {
			return err
		}
		if err := pl.candidates(departed...); err != nil {
			return err
		}
		pl.p.forget = append(pl.p.forget, forget...)
	}
	pl.p.Orphaned = pl.a.orphaned(orphans)
	for _, d := range deleted {
		up, err := pl.a.deleted(d[0], d[1], pl.seen)
		if err != nil {
			return err
		}
		if up != nil {
			if err := pl.candidates(up); err != nil {
				return err
			}
		}
	}
	return nil
}

// readSource reads one directory in full or incrementally, passing each
// user to consider, and keeps its tracking record for the commit.
func (pl *planner) readSource(ctx context.Context, s NamedSource, incremental bool, crls string) (SourceReport, ldapsrc.ReadResult, error) {
	a, p := pl.a, pl.p
	rep := SourceReport{Name: s.Name, Mode: ModeFull}
	tr, found, err := a.readTracking(s.Name)
	if err != nil {
		return rep, ldapsrc.ReadResult{}, &passError{err}
	}
	var since []byte
	if incremental {
		since, rep.FullReason = a.sinceFor(tr, found, p.Started, crls)
	}
	var review time.Time
	read := 0
	var sight certSight
	// Users are judged on every core while the read goes on, and filed
	// here one by one in the order read.
	pipe := newPipeline(func(us []mapping.SourceUser, js []judgement) {
		a.judgeAll(s.Name, us, js, p.Started, pl.memo, pl.settling)
	},
		func(u mapping.SourceUser, j judgement) error {
			if other, dup := pl.seen.source(u.Anchor); dup {
				if other == s.Name {
					a.log.Warn("the directory returned a user twice; the second copy is ignored",
						zap.String("source", s.Name), zap.String("anchor", u.Anchor), zap.String("dn", u.DN))
					return nil
				}
				// The same object read through two sources (overlapping
				// configurations): which one owns it cannot be told, so
				// neither copy decides anything beyond the first.
				return pl.found.put(&UserPlan{Anchor: u.Anchor, Source: s.Name, DN: u.DN, Name: u.Name(),
					Problem: fmt.Sprintf("the same user (anchor %s) was read from directory %s too: the sources overlap; this copy is ignored", u.Anchor, other)})
			}
			pl.seen.add(u.Anchor, s.Name)
			read++
			if err := sight.note(a.store, u); err != nil {
				return err
			}
			r, err := pl.consider(s.Name, u, j, false)
			review = earlier(review, r)
			return err
		})
	res, err := s.Source.Read(ctx, ldapsrc.ReadRequest{Since: since}, pipe.add)
	if stateErr := pipe.close(); stateErr != nil {
		// The state could not be read: not this directory's fault, and
		// no other directory's part can be trusted either.
		return rep, res, &passError{stateErr}
	}
	rep.LDAPOperations = res.Operations
	switch {
	case err != nil && res.Entries == 0:
		rep.Err = fmt.Errorf("reading the directory: %w; nothing will be changed for its users", err)
	case err != nil:
		// An incomplete read must never look like users without
		// certificates: this directory's part of the plan is void.
		rep.Err = fmt.Errorf("directory read incomplete after %d users, nothing will be changed for its users: %w", res.Entries, err)
	default:
		rep.Err = pl.checkSight(ctx, s, sight, res.Full)
	}
	if rep.Err != nil {
		pl.dropSource(s.Name)
		return rep, res, rep.Err
	}
	rep.UsersRead = read

	next := tracking{Version: trackingVersion, Fingerprint: a.track.Fingerprint, CRLs: crls, Watermark: res.Next, FullAt: tr.FullAt}
	if res.Full {
		if since != nil && res.Reason != "" {
			rep.FullReason = res.Reason
		}
		next.FullAt, next.NextReview = p.Started, review
	} else {
		// Users not read keep the review times found when they were.
		rep.Mode, next.NextReview = ModeIncremental, earlier(tr.NextReview, review)
	}
	if a.policy.CheckRevocation {
		// A stale CRL changes verdicts under revocationUnavailable:
		// reject, so its nextUpdate is a review time too.
		next.NextReview = earlier(next.NextReview, a.policy.Revocation.NextUpdate())
	}
	if rep.FullReason != "" {
		a.log.Info("reading every user", zap.String("source", s.Name), zap.String("reason", rep.FullReason))
	}
	p.tracking[s.Name] = &next
	return rep, res, nil
}

// passError is a failure of the pass itself (the state file), not of
// the directory being read: it ends the plan.
type passError struct{ err error }

func (e *passError) Error() string { return e.err.Error() }
func (e *passError) Unwrap() error { return e.err }

// dropSource takes back what a failed read of source had added: none of
// its users may change in this pass.
func (pl *planner) dropSource(source string) {
	// Its users stay in seen: one read before the failure must not look
	// departed from another directory it moved from.
	pl.dropped[source] = true
}

// departed finds the users of source certsync published for that no
// directory returned in this pass: their values are withdrawn. Only a
// complete read of source gets here. It counts in orphans, by attribute,
// the users of source holding values of a target no longer configured
// (orphan.go).
func (a *Agent) departed(source string, seen *anchorSet, orphans map[string]int) ([]*UserPlan, []string, error) {
	// The briefs say which records matter; only those of departed users
	// are read whole.
	var gone, forget []string
	err := a.store.ForEachBrief(func(b state.Brief) error {
		if a.sourceOf(state.Record{Source: b.Source}) != source {
			return nil
		}
		a.countOrphans(b.Held, orphans)
		if seen.has(b.Anchor) {
			return nil
		}
		if !b.HoldsValues() {
			forget = append(forget, b.Anchor)
			return nil
		}
		gone = append(gone, b.Anchor)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("agent: reading state: %w", err)
	}
	out := make([]*UserPlan, 0, len(gone))
	for _, anchor := range gone {
		rec, ok, err := a.store.Get(anchor)
		if err != nil {
			return nil, nil, fmt.Errorf("agent: reading state: %w", err)
		}
		if ok {
			out = append(out, a.departedUser(source, rec))
		}
	}
	return out, forget, nil
}

// deleted turns an anchor an incremental read of source reported deleted
// into a departed user, when certsync published for it.
func (a *Agent) deleted(source, anchor string, seen *anchorSet) (*UserPlan, error) {
	if seen.has(anchor) {
		return nil, nil // deleted and re-created (or restored, or moved) in one interval
	}
	rec, ok, err := a.store.Get(anchor)
	if err != nil {
		return nil, fmt.Errorf("agent: reading state: %w", err)
	}
	if !ok || !holdsValues(rec) || a.sourceOf(rec) != source {
		return nil, nil
	}
	return a.departedUser(source, rec), nil
}

func (a *Agent) departedUser(source string, rec state.Record) *UserPlan {
	up := &UserPlan{Anchor: rec.Anchor, Source: source, DN: rec.DN, Name: rec.Name, Departed: true, record: rec, hasRecord: true}
	if up.Name == "" {
		up.Name = rec.DN
	}
	for _, at := range a.attrs {
		up.Targets = append(up.Targets, a.targetPlan(at, source, nil))
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
