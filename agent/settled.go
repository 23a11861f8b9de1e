package agent

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// A user whose directory values, and everything that judges them, are
// what they were when its record was last found in line with them (a
// settled mark, state.Settled) needs nothing: its certificates are not
// parsed or checked again and its record is not read, until the mark's
// time runs out. This is what makes a pass over an unchanged directory
// cost little more than reading it.
//
// The digest covers the user's certificate values and identity
// attributes, the directory's name, and, for the whole pass, the
// policy, the trusted CAs, every target's settings (Fingerprint) and the
// CRLs' identity. A mark is set only for a user the pass judged in full
// and left in line: no rejected or withheld certificate, no problem, no
// write pending, every target holding exactly what the user wants
// (Values and Kept). Any write of the record drops it (state.Commit).

// settling is one pass's use of the marks.
type settling struct {
	// on: the pass may trust marks. Off when a pass must look at every
	// user (--user, --reconcile, --reclaim).
	on  bool
	key [sha256.Size]byte // the pass-wide part of every digest
	// bufs holds the buffers users' digests are written into: hashing
	// a buffer, not field by field, copies no value twice.
	bufs sync.Pool
}

// newSettling digests what judges every user of this pass; crls is the
// CRLs' identity (revocation).
func (a *Agent) newSettling(o PlanOptions, crls string) *settling {
	b := appendField(nil, "certsync settled v1")
	b = appendField(b, Fingerprint(a.policy, a.targets))
	b = appendField(b, crls)
	return &settling{on: o.User == "" && !o.Reconcile && !o.Reclaim, key: sha256.Sum256(b)}
}

// appendField appends one length-prefixed field, so that no two lists of
// fields digest alike.
func appendField[T string | []byte](b []byte, v T) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// inputs digests what judges u, read from source, in this pass.
func (s *settling) inputs(source string, u mapping.SourceUser) [sha256.Size]byte {
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := append((*bp)[:0], s.key[:]...)
	b = appendField(b, source)
	var held [8]string
	names := held[:0]
	for k := range u.Attributes {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		b = appendField(b, k)
		b = appendField(b, u.Attributes[k])
	}
	b = appendField(b, "values")
	for _, v := range u.Values {
		b = appendField(b, v.Attribute)
		b = appendField(b, v.Data)
	}
	sum := sha256.Sum256(b)
	*bp = b
	s.bufs.Put(bp)
	return sum
}

// settledJudgements looks for the marks of users, their briefs read in
// one transaction: js[i] gets users[i]'s digest and, when its mark holds,
// the mark (js[i].settled): then nothing else is needed of that user.
func (a *Agent) settledJudgements(s *settling, source string, users []mapping.SourceUser, js []judgement, now time.Time) {
	if s == nil || !s.on {
		return
	}
	var anchors []string
	var asked []int
	for i, u := range users {
		if len(u.Unread) > 0 {
			continue
		}
		js[i].inputs = s.inputs(source, u)
		anchors = append(anchors, u.Anchor)
		asked = append(asked, i)
	}
	a.store.Briefs(anchors, func(k int, b state.Brief, ok bool, err error) {
		i := asked[k]
		switch {
		case err != nil:
			// Judged in full, and the read of its record will say it.
			a.log.Debug("reading a user's brief failed", zap.String("user", users[i].DN), zap.Error(err))
			return
		case !ok || b.Settled == nil || b.Settled.Inputs != js[i].inputs || a.sourceOf(state.Record{Source: b.Source}) != source:
			return
		case !b.Settled.Until.IsZero() && !now.Before(b.Settled.Until):
			return
		}
		js[i].settled = b.Settled
	})
}

// settledStats is what a settled user adds to the pass's counts, and its
// review time (nextReview's, from the accepted certificates' expiry).
func settledStats(st *state.Settled, now time.Time) (accepted, expiring int, review time.Time) {
	for _, t := range st.NotAfter {
		if t.Before(now.Add(ExpiringWithin)) {
			expiring++
		}
		if r := afterExpiry(t); r.After(now) {
			review = earlier(review, r)
		}
	}
	return len(st.NotAfter), expiring, review
}

// settledMark is the mark u's judgement would leave if the pass leaves
// its record in line with it; nil when it cannot have one.
func settledMark(inputs [sha256.Size]byte, ev mapping.Evaluation) *state.Settled {
	if inputs == ([sha256.Size]byte{}) || len(ev.Rejected) > 0 || len(ev.Withheld) > 0 {
		return nil
	}
	st := &state.Settled{Inputs: inputs, Until: ev.Until}
	for _, c := range ev.Accepted {
		st.NotAfter = append(st.NotAfter, c.Cert.NotAfter)
	}
	return st
}

// inLine reports whether rec, the record a pass leaves for u, holds what
// u wants in every target, with nothing pending and no problem: the
// record a settled mark may vouch for.
func (u *UserPlan) inLine(rec state.Record) bool {
	if u.Departed || u.OutOfScope || u.Failed() || rec.Problem != "" || len(u.Rejected) > 0 || len(u.Withheld) > 0 {
		return false
	}
	for _, t := range u.Targets {
		tr := rec.Targets[t.Target]
		if t.Problem != "" || len(tr.Pending) > 0 || !mapping.SameSet(t.Desired, union(tr.Values, tr.Kept)) {
			return false
		}
	}
	return true
}

// canWrite reports whether the store takes writes (a dry run's snapshot
// does not).
func (a *Agent) canWrite() bool {
	cs, ok := a.store.(chainStore)
	return ok && cs.Writable()
}

// settledFlush is how many marks a pass holds before it writes them, as
// many as a chunk of the plan.
const settledFlush = cloudChunk

// writeSettled stores marks earned in a pass, after its results: a cache,
// so a failure is logged and the pass stands. Commit writes them a
// bounded number of pages a transaction.
func (a *Agent) writeSettled(marks map[string]state.Settled) {
	if len(marks) == 0 {
		return
	}
	if err := a.store.Commit(state.Commit{Settled: marks}); err != nil {
		a.log.Warn("could not remember which users are settled; the next pass judges them again", zap.Error(err))
	}
}
