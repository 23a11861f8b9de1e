package agent

import (
	"fmt"
	"slices"
	"strings"

	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// conflicts keeps two directory users (from one directory or several)
// from writing the same account: the cloud holds one collection per
// account, and two users' writes would overwrite each other. Within a
// pass, a user whose values leave an account (departed) goes first and
// the others wait for the next pass; two users still in their directories
// are both reported. A user newly matching an account whose values
// certsync already publishes for another user is reported, and the other
// user keeps its values.
func (a *Agent) conflicts(candidates []*UserPlan) error {
	var claims map[string]state.Record // attribute + "\x00" + account id → the record holding it
	for ti := range a.targets {
		byAccount := map[string][]*UserPlan{}
		var ids []string
		for _, up := range candidates {
			id := up.accountIn(ti)
			if id == "" {
				continue
			}
			if byAccount[id] == nil {
				ids = append(ids, id)
			}
			byAccount[id] = append(byAccount[id], up)
		}
		for _, id := range ids {
			group := byAccount[id]
			if len(group) > 1 {
				a.settleGroup(ti, id, group)
				continue
			}
			up := group[0]
			if up.Departed || up.claims(ti, id) {
				continue
			}
			if claims == nil {
				var err error
				if claims, err = a.accountClaims(); err != nil {
					return err
				}
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

// accountClaims indexes the state: which record links each account of
// each attribute.
func (a *Agent) accountClaims() (map[string]state.Record, error) {
	claims := map[string]state.Record{}
	err := a.store.ForEach(func(rec state.Record) error {
		for attr, tr := range rec.Targets {
			if tr.CloudID != "" {
				claims[attr+"\x00"+tr.CloudID] = state.Record{Anchor: rec.Anchor, Source: rec.Source, DN: rec.DN, Name: rec.Name}
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
func (a *Agent) duplicates(candidates []*UserPlan) {
	for _, at := range a.attrs {
		if !at.unique {
			continue
		}
		holders := map[string][]*UserPlan{}
		var values []string
		for _, up := range candidates {
			if up.Departed || up.Problem != "" {
				continue
			}
			for _, t := range up.Targets {
				if t.Target != at.name || t.Problem != "" {
					continue
				}
				for _, v := range union(t.Change.Add, t.Change.Owned) {
					if holders[v] == nil {
						values = append(values, v)
					}
					holders[v] = append(holders[v], up)
				}
			}
		}
		for _, v := range values {
			group := holders[v]
			if len(group) < 2 {
				continue
			}
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
}
