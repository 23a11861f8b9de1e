package agent

import (
	"cmp"
	"slices"

	"go.uber.org/zap"
)

// Orphaned counts the users whose state records hold values certsync
// wrote to a target that is no longer configured (its directory's
// altSecurityIdentities turned off, ...). Turning a target off never
// removes what it wrote: a removed logon mapping stops a smart card, so
// withdrawing is a deliberate act of its own (Withdraw). Until then the
// values stay where they are, still certsync's in the state, and every
// full pass reports them.
type Orphaned struct {
	Target string // the attribute, e.g. ad.altSecurityIdentities
	Users  int
	// Withdraw is the command that removes them, "" when certsync has
	// none for this target (enable it again, or remove them by hand).
	Withdraw string
}

// countOrphans adds to counts the attributes a record holds values in
// (Brief.Held) that no configured target writes.
func (a *Agent) countOrphans(held []string, counts map[string]int) {
	for _, attr := range held {
		if !slices.ContainsFunc(a.attrs, func(at attrSpec) bool { return at.name == attr }) {
			counts[attr]++
		}
	}
}

// orphaned turns counts into the plan's report, and logs it.
func (a *Agent) orphaned(counts map[string]int) []Orphaned {
	var out []Orphaned
	for attr, n := range counts {
		o := Orphaned{Target: attr, Users: n}
		if attr == TargetAltSecurityIdentities {
			o.Withdraw = "certsync sync --withdraw " + TargetAltSecurityIdentities
		}
		a.log.Warn("values certsync wrote to a target no longer configured stay in place", zap.String("target", attr), zap.Int("users", n), zap.String("withdraw", o.Withdraw))
		out = append(out, o)
	}
	slices.SortFunc(out, func(x, y Orphaned) int { return cmp.Compare(x.Target, y.Target) })
	return out
}
