package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/cloudsink"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/state"
)

// Apply writes a plan to the cloud and records in the state what the
// cloud confirmed. A plan over the deletion limit applies nothing and
// returns ErrDeletionLimit unless allowDeletes accepts as many users losing
// values as it strips (the admin's --allow-deletes=N: a bound, so a plan
// that grew after the dry run the admin read is still refused). Per-user
// failures do not stop the pass: they are set on the plan's targets (Err)
// and counted.
func (a *Agent) Apply(ctx context.Context, p *Plan, allowDeletes int) error {
	if p.Guard.Tripped && p.Guard.UsersRemoving > allowDeletes {
		why := p.Guard.Reason
		if allowDeletes > 0 {
			why = fmt.Sprintf("%d users would lose certificates, more than --allow-deletes=%d accepts; %s", p.Guard.UsersRemoving, allowDeletes, why)
		}
		a.record(p, "refused", why)
		return fmt.Errorf("agent: %w: %s; nothing was applied (check the dry run, then run once with --allow-deletes=%d to accept)", ErrDeletionLimit, why, p.Guard.UsersRemoving)
	}

	// Users go a chunk at a time: the intent recorded, the writes, then
	// what the cloud confirmed; the watermarks only once every chunk is
	// done.
	out := a.newSpill()
	p.Stats.resetOutcome()
	retry := map[string]string{} // by source: why its users are to be retried
	chunk := make([]*UserPlan, 0, cloudChunk)
	changed := 0
	flush := func() error {
		p.noteHeld(len(chunk))
		if err := a.applyChunk(ctx, chunk, retry); err != nil {
			return err
		}
		var shown []*UserPlan
		for _, u := range chunk {
			if u.reportable(p.Mode) {
				p.Stats.tally(u, p.Mode, 1)
				shown = append(shown, u)
			}
		}
		if err := out.putRun(shown); err != nil {
			return err
		}
		clear(chunk)
		chunk, changed = chunk[:0], 0
		return nil
	}
	fail := func(err error) error {
		_ = out.close()
		return err
	}
	for u, err := range p.all() {
		if err != nil {
			return fail(err)
		}
		chunk = append(chunk, u)
		if u.Changed() {
			changed++
		}
		// A chunk sends cloudChunk users' writes (full batches), and
		// holds few more users that only need their records.
		if changed == cloudChunk || len(chunk) == 2*cloudChunk {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	if err := out.flush(); err != nil {
		return fail(err)
	}
	_ = p.users.close()
	p.users, p.overrides = out, nil

	tenantErr := a.applyTenant(ctx, p)

	commit := state.Commit{Deletes: p.forget, Meta: map[string]any{}}
	for source, tr := range p.tracking {
		if why := retry[source]; why == "" {
			commit.Meta[metaTracking(source)] = tr
		} else {
			// The watermark stays where it was, so the next incremental
			// pass reads these users again and retries them.
			a.log.Info("change-tracking watermark not advanced", zap.String("source", source), zap.String("reason", why))
		}
	}
	a.noteRemovals(p, p.Guard.Tripped, commit.Meta)
	if err := a.store.Commit(commit); err != nil {
		return fmt.Errorf("agent: recording results: %w", err)
	}
	a.writeSettled(p.settle)
	if b, ok := a.store.(interface{ Backup() error }); ok {
		// The copy a lost or damaged state file is restored from.
		if err := b.Backup(); err != nil {
			a.log.Warn("state backup failed; the state file itself is committed", zap.Error(err))
		}
	}
	result, msg := "ok", ""
	switch {
	case p.Err() != nil:
		result, msg = "partial", p.Err().Error()
	case tenantErr != nil:
		result, msg = "partial", tenantErr.Error()
	case p.Stats.UsersFailed > 0:
		result = "partial"
	case p.Stats.UsersChanged > 0 || p.TenantChanges() > 0:
		result = "changes"
	}
	a.record(p, result, msg)
	return errors.Join(ctx.Err(), tenantErr)
}

// applyChunk applies a chunk of a plan's users: it records their intent
// before writing, so that if certsync dies between the cloud's answer and
// the state commit, the next pass still knows which of the values now in
// the cloud are its own; then it writes, and commits what the cloud
// confirmed. It notes in retry, by source, a user to be tried again.
func (a *Agent) applyChunk(ctx context.Context, chunk []*UserPlan, retry map[string]string) error {
	var pending []state.Record
	for _, u := range chunk {
		if !u.Changed() {
			continue
		}
		rec := u.baseRecord(a)
		for _, t := range u.Targets {
			if t.Problem == "" && len(t.Change.Add) > 0 {
				tr := rec.Targets[t.Target]
				tr.Pending = t.Change.Add
				rec.Targets[t.Target] = tr
			}
		}
		pending = append(pending, rec)
	}
	if len(pending) > 0 {
		if err := a.store.Update(pending, nil); err != nil {
			return fmt.Errorf("agent: recording pending writes: %w", err)
		}
	}

	for ti, target := range a.targets {
		var updates []cloudsink.Update
		var owners []*TargetPlan
		for _, u := range chunk {
			for _, t := range u.Targets {
				if t.target == ti && t.Problem == "" && t.Change.Changed() {
					updates = append(updates, cloudsink.Update{Key: u.Anchor, Source: u.Source, AccountID: t.CloudID, Target: t.Target,
						Values: t.Change.Final, Add: t.Change.Add, Remove: t.Change.Remove})
					owners = append(owners, t)
				}
			}
		}
		for start := 0; start < len(updates); start += cloudChunk {
			end := min(start+cloudChunk, len(updates))
			results := target.Apply(ctx, updates[start:end])
			if len(results) != end-start {
				return fmt.Errorf("agent: %s answered %d of %d updates", target.Name(), len(results), end-start)
			}
			for i, r := range results {
				owners[start+i].Err = r.Err
				owners[start+i].Applied = r.Err == nil
			}
		}
	}

	var puts []state.Record
	var deletes []string
	marks := map[string]state.Settled{}
	for _, u := range chunk {
		rec, keep := u.finalRecord(a)
		switch {
		case keep && !u.sameAsBefore(rec):
			puts = append(puts, rec)
		case !keep && u.hasRecord:
			deletes = append(deletes, u.Anchor)
		}
		if keep && u.mark != nil && u.inLine(rec) {
			marks[u.Anchor] = *u.mark
		}
		for _, t := range u.Targets {
			if t.Err != nil {
				a.log.Warn("cloud write failed", zap.String("user", u.Name), zap.String("target", t.Target), zap.Error(t.Err))
			}
		}
		if why := u.retryLater(); why != "" && retry[u.Source] == "" {
			retry[u.Source] = why
		}
	}
	// A mark lands with its user's record, never on a record that is not
	// in line yet: that would skip a user who needs work.
	if err := a.store.Commit(state.Commit{Puts: puts, Deletes: deletes, Settled: marks}); err != nil {
		return fmt.Errorf("agent: recording results: %w", err)
	}
	return nil
}

// baseRecord is the user's state record with its identity refreshed.
func (u *UserPlan) baseRecord(a *Agent) state.Record {
	rec := u.record
	rec.Anchor, rec.Source, rec.DN, rec.Name = u.Anchor, u.Source, u.DN, u.Name
	rec.UpdatedAt = a.now()
	targets := make(map[string]state.TargetRecord, len(u.Targets))
	for k, v := range u.record.Targets {
		targets[k] = v
	}
	rec.Targets = targets
	return rec
}

// finalRecord is what the state keeps after Apply: owned values only for
// targets the cloud confirmed (or that needed no write), the rest as they
// were. keep false: nothing is left to remember.
func (u *UserPlan) finalRecord(a *Agent) (state.Record, bool) {
	rec := u.baseRecord(a)
	var problems []string
	if u.Problem != "" {
		problems = append(problems, u.Problem)
	}
	for _, t := range u.Targets {
		tr := rec.Targets[t.Target]
		switch {
		case t.Problem != "":
			problems = append(problems, t.Target+": "+t.Problem)
		case t.Err != nil:
			problems = append(problems, t.Target+": "+t.Err.Error())
			if !refused(t.Err) {
				// The write may have landed (a timeout, a 5xx after the
				// retries): keep the intent so the next pass can tell.
				tr.Pending = union(tr.Pending, t.Change.Add)
			}
		case t.CloudID != "":
			// Confirmed, or nothing to write: the diff's Owned is now true.
			tr = state.TargetRecord{CloudID: t.CloudID, Values: t.Change.Owned, Kept: intersect(t.Desired, t.Change.Unowned)}
		case u.Departed && t.gone && (tr.GoneSince.IsZero() || a.now().Sub(tr.GoneSince) < deletedRetention):
			// The account is deleted, but a deleted account can be
			// restored with its values: they stay ours, so that a later
			// pass finds it back and withdraws them.
			if tr.GoneSince.IsZero() {
				tr.GoneSince = a.now()
			}
		case u.Departed:
			// The cloud account is gone for good, or was never written
			// to: nothing of ours is left there.
			tr = state.TargetRecord{}
		}
		if len(tr.Values) == 0 && len(tr.Pending) == 0 && len(tr.Kept) == 0 {
			delete(rec.Targets, t.Target)
		} else {
			rec.Targets[t.Target] = tr
		}
	}
	rec.Problem = strings.Join(problems, "; ")
	if rec.Problem != "" {
		if u.record.Problem != rec.Problem || u.record.ProblemAt.IsZero() {
			rec.ProblemAt = a.now()
		}
	} else {
		rec.ProblemAt = time.Time{}
	}
	if u.Departed && len(rec.Targets) == 0 {
		return rec, false
	}
	return rec, len(rec.Targets) > 0 || rec.Problem != ""
}

// deletedRetention is how long a deleted account can be restored: Entra ID
// keeps deleted users in its deleted items for 30 days, then deletes them
// permanently (https://learn.microsoft.com/graph/api/resources/directory).
// A departed user's values on a deleted account stay in the state that
// long (TargetRecord.GoneSince), so a restore brings back values certsync
// still owns and withdraws.
const deletedRetention = 30 * 24 * time.Hour

// retryLater says why the user's outcome may change by trying again (a
// failed lookup, a write that failed for a passing reason, a wait for
// another user), or "" when it is settled; a source's watermark stays
// while one of its users is to be retried. Refusals and users without a
// cloud account wait for their next change or the next full read.
func (u *UserPlan) retryLater() string {
	for _, t := range u.Targets {
		if (t.Err != nil && !refused(t.Err)) || t.retry {
			return fmt.Sprintf("%s (%s) is to be retried", u.Name, t.Target)
		}
	}
	return ""
}

// refused reports whether the service answered the write with a definite
// no (a 4xx other than throttling, a directory's refusal), so nothing of
// it landed.
func refused(err error) bool {
	var ce *cloudsink.Error
	return errors.Is(err, ldapsrc.ErrWriteRefused) || (errors.As(err, &ce) && ce.Status >= 400 && ce.Status < 500 && ce.Status != 429)
}

// sameAsBefore reports whether rec says nothing new, so that a pass over
// unchanged users writes nothing to the state file either.
func (u *UserPlan) sameAsBefore(rec state.Record) bool {
	if !u.hasRecord {
		return false
	}
	old := u.record
	old.UpdatedAt, rec.UpdatedAt = time.Time{}, time.Time{}
	if len(old.Targets) == 0 && len(rec.Targets) == 0 {
		old.Targets, rec.Targets = nil, nil
	}
	return reflect.DeepEqual(old, rec)
}

// record stores the pass summary; a failure to do so is logged, not
// fatal: the pass itself is already committed.
func (a *Agent) record(p *Plan, result, msg string) {
	s := p.Stats
	sum := state.PassSummary{
		Started: p.Started, Finished: a.now(), Mode: p.Mode, Result: result, Error: msg,
		UsersRead: s.UsersRead, UsersChanged: s.UsersChanged, UsersFailed: s.UsersFailed, UsersUnmatched: s.UsersUnmatched,
		ValuesAdded: s.ValuesAdded, ValuesRemoved: s.ValuesRemoved, CertificatesRejected: s.CertificatesRejected, UsersSkipped: s.UsersSkipped,
	}
	for _, sr := range p.Sources {
		sp := state.SourcePass{Name: sr.Name, Mode: sr.Mode, UsersRead: sr.UsersRead}
		if sr.Err != nil {
			sp.Error = sr.Err.Error()
		}
		sum.Sources = append(sum.Sources, sp)
	}
	err := a.store.SetLastPass(sum)
	if err != nil {
		a.log.Error("could not record the pass summary", zap.Error(err))
	}
}

// RecordFailure stores the summary of a pass that could not be planned.
func (a *Agent) RecordFailure(o PlanOptions, err error) {
	p := &Plan{Mode: o.mode(), Started: a.now()}
	for _, s := range a.sources {
		p.Sources = append(p.Sources, SourceReport{Name: s.Name, Mode: p.Mode})
	}
	a.record(p, "failed", err.Error())
}
