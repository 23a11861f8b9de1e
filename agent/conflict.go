package agent

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// settler reads the suspects of a plan back and changes those that do
// clash; the changed users become the plan's overrides.
type settler struct {
	a      *Agent
	p      *Plan
	loaded map[int]*UserPlan
}

// user reads user pos back once; its figures are taken out of the plan's
// until done counts it again as changed.
func (s *settler) user(pos uint32) (*UserPlan, error) {
	if u, ok := s.loaded[int(pos)]; ok {
		return u, nil
	}
	u, err := s.p.users.get(int(pos))
	if err != nil {
		return nil, err
	}
	if s.loaded == nil {
		s.loaded = map[int]*UserPlan{}
	}
	s.loaded[int(pos)] = u
	s.p.Stats.tally(u, s.p.Mode, -1)
	return u, nil
}

// done makes the users read back the plan's overrides.
func (s *settler) done() {
	for pos, u := range s.loaded {
		s.p.Stats.tally(u, s.p.Mode, 1)
		if s.p.users.onFile() {
			if s.p.overrides == nil {
				s.p.overrides = map[int]*UserPlan{}
			}
			s.p.overrides[pos] = u
		}
	}
	s.p.noteHeld(0)
}

// conflicts keeps two directory users (from one directory or several)
// from writing the same account: the cloud holds one collection per
// account, and two users' writes would overwrite each other. Within a
// pass, a user whose values leave an account (departed) goes first and
// the others wait for the next pass; two users still in their directories
// are both reported. A user newly matching an account whose values
// certsync already publishes for another user is reported, and the other
// user keeps its values.
func (s *settler) conflicts(ix *planIndex) error {
	a := s.a
	grouped := map[[2]uint32]bool{} // (pos, target) of users in a group
	for ti := range a.targets {
		for _, run := range ix.accountSuspects(ti) {
			byAccount := map[string][]*UserPlan{}
			posOf := map[*UserPlan]uint32{}
			var ids []string
			for _, e := range run {
				up, err := s.user(e.pos)
				if err != nil {
					return err
				}
				id := up.accountIn(ti)
				if byAccount[id] == nil {
					ids = append(ids, id)
				}
				byAccount[id] = append(byAccount[id], up)
				posOf[up] = e.pos
			}
			for _, id := range ids {
				group := byAccount[id]
				if len(group) < 2 {
					continue // two accounts whose hashes collide
				}
				for _, up := range group {
					grouped[[2]uint32{posOf[up], uint32(ti)}] = true
				}
				a.settleGroup(ti, id, group)
			}
		}
	}
	var need []ixEntry
	for _, e := range ix.claims {
		if !grouped[[2]uint32{e.pos, uint32(e.n)}] {
			need = append(need, e)
		}
	}
	if len(need) == 0 {
		return nil
	}
	claims, err := a.accountClaims(ix, need)
	if err != nil || len(claims) == 0 {
		return err
	}
	checked := map[[2]uint32]bool{}
	for _, e := range need {
		key := [2]uint32{e.pos, uint32(e.n)}
		if checked[key] {
			continue
		}
		checked[key] = true
		up, err := s.user(e.pos)
		if err != nil {
			return err
		}
		ti := int(e.n)
		id := up.accountIn(ti)
		if id == "" {
			continue
		}
		for _, t := range up.Targets {
			if t.target != ti {
				continue
			}
			if other, ok := claims[t.Target+"\x00"+id]; ok && other.Anchor != up.Anchor {
				up.block(ti, fmt.Sprintf("conflict: this %s (%s) already holds values certsync publishes for %s (directory %s); two directory users cannot share one account: fix the match (%s) in one directory",
					a.targets[ti].Account(), accountName(t), recordName(other), a.recordSource(other), a.targets[ti].Match().SourceAttribute), false)
				break
			}
		}
	}
	return nil
}

// settleGroup decides between several users of one pass that resolve to
// the same account of target ti.
func (a *Agent) settleGroup(ti int, id string, group []*UserPlan) {
	slices.SortFunc(group, func(x, y *UserPlan) int { return strings.Compare(x.Source+"\x00"+x.Anchor, y.Source+"\x00"+y.Anchor) })
	var present, departed []*UserPlan
	for _, up := range group {
		if up.Departed {
			departed = append(departed, up)
		} else {
			present = append(present, up)
		}
	}
	acct := a.targets[ti].Account()
	if len(present) > 1 {
		names := make([]string, len(present))
		for i, up := range present {
			names[i] = fmt.Sprintf("%s (directory %s)", up.Name, up.Source)
		}
		for _, up := range present {
			up.block(ti, fmt.Sprintf("conflict: %d directory users match the same %s %s: %s; nothing is written to it until only one does",
				len(present), acct, id, strings.Join(names, ", ")), false)
		}
		present = nil
	}
	// One writer per account and pass: the first departed user withdraws
	// its values now, everyone else waits for the next pass.
	var first *UserPlan
	if len(departed) > 0 {
		first = departed[0]
	}
	for _, up := range slices.Concat(present, departed) {
		if up == first || first == nil {
			continue
		}
		up.block(ti, fmt.Sprintf("waits: the %s %s first loses the values certsync published for %s (directory %s)", acct, id, first.Name, first.Source), true)
	}
}

// accountIn is the account the user resolved to in target ti, "" when none.
func (u *UserPlan) accountIn(ti int) string {
	for _, t := range u.Targets {
		if t.target == ti && t.CloudID != "" && t.Problem == "" {
			return t.CloudID
		}
	}
	return ""
}

// claims reports whether the user's own record already links it to
// account id in target ti: then no other record can hold it rightly.
func (u *UserPlan) claims(ti int, id string) bool {
	for _, t := range u.Targets {
		if t.target == ti && u.record.Targets[t.Target].CloudID == id {
			return true
		}
	}
	return false
}

// block stops every attribute of target ti for this user: a conflict
// (a failure, for the admin to resolve) or a wait (skipped, retried).
func (u *UserPlan) block(ti int, why string, wait bool) {
	for _, t := range u.Targets {
		if t.target != ti {
			continue
		}
		t.Problem, t.Skipped, t.retry = why, wait, wait
		t.Change = mapping.TargetChange{Unowned: t.Change.Unowned}
		t.Adopted = nil
	}
}

// accountClaims reads from the state which record links each account of
// each attribute, for the attribute + account hashes of need.
func (a *Agent) accountClaims(ix *planIndex, need []ixEntry) (map[string]state.Record, error) {
	hashes := make([]uint32, len(need))
	for i, e := range need {
		hashes[i] = e.h
	}
	slices.Sort(hashes)
	claims := map[string]state.Record{}
	err := a.store.ForEach(func(rec state.Record) error {
		for attr, tr := range rec.Targets {
			if tr.CloudID == "" {
				continue
			}
			key := attr + "\x00" + tr.CloudID
			if _, ok := slices.BinarySearch(hashes, ix.hash(key)); ok {
				claims[key] = state.Record{Anchor: rec.Anchor, Source: rec.Source, DN: rec.DN, Name: rec.Name}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("agent: reading state: %w", err)
	}
	return claims, nil
}

func (a *Agent) recordSource(rec state.Record) string {
	if s := a.sourceOf(rec); s != "" {
		return s
	}
	return rec.Source
}

func recordName(rec state.Record) string {
	if rec.Name != "" {
		return rec.Name
	}
	return rec.DN
}

func accountName(t *TargetPlan) string {
	if t.CloudName != "" {
		return t.CloudName
	}
	return t.CloudID
}

// duplicates refuses, in attributes whose values may sit on one account
// only (cloudsink.Target.Unique), a value two users of the pass would
// hold: which of them the certificate belongs to cannot be told, so
// neither gets it and both are reported. A user already holding it keeps
// it (a blocked attribute is not written).
func (s *settler) duplicates(ix *planIndex) error {
	for ai, at := range s.a.attrs {
		if !at.unique {
			continue
		}
		type held struct {
			v      string
			seq, n uint32
		}
		var groups [][]*UserPlan
		var firsts []held
		for _, run := range ix.valueSuspects(ai) {
			// The run's users, once each, in the order read; their values
			// with this hash (several only when two values collide).
			holders := map[string][]*UserPlan{}
			var values []held
			seen := map[uint32]bool{}
			for _, e := range run {
				if seen[e.pos] {
					continue
				}
				seen[e.pos] = true
				up, err := s.user(e.pos)
				if err != nil {
					return err
				}
				if up.Departed || up.Problem != "" {
					continue
				}
				for _, t := range up.Targets {
					if t.Target != at.name || t.Problem != "" {
						continue
					}
					for vi, v := range union(t.Change.Add, t.Change.Owned) {
						if ix.hash(v) != run[0].h {
							continue
						}
						if holders[v] == nil {
							values = append(values, held{v, e.seq, uint32(vi)})
						}
						holders[v] = append(holders[v], up)
					}
				}
			}
			for _, h := range values {
				if len(holders[h.v]) > 1 {
					groups = append(groups, holders[h.v])
					firsts = append(firsts, h)
				}
			}
		}
		// In the order the values first appear among the users read.
		order := make([]int, len(groups))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(i, j int) int {
			return cmp.Or(cmp.Compare(firsts[i].seq, firsts[j].seq), cmp.Compare(firsts[i].n, firsts[j].n))
		})
		for _, i := range order {
			group, v := groups[i], firsts[i].v
			names := make([]string, len(group))
			for i, up := range group {
				names[i] = fmt.Sprintf("%s (directory %s)", up.Name, up.Source)
			}
			for _, up := range group {
				up.block(at.target, fmt.Sprintf("conflict: %s is wanted for %d users: %s; a value may sit on one account only, so none of them gets it: remove the certificate from all but one",
					v, len(group), strings.Join(names, ", ")), false)
			}
		}
	}
	return nil
}
