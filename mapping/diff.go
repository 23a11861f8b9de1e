package mapping

// Diff computes what one cloud target (one multi-valued attribute of one
// user) must become.
//
//   - desired: what certsync wants there now, in priority order;
//   - published: what the state says certsync owns there;
//   - current: what the cloud holds now;
//   - limit: how many values the target takes, 0 for no limit.
//
// certsync only removes what it published (DESIGN.md §3): Remove holds the
// published values no longer desired that are still present, in current's
// order; every other current value is kept, and those certsync did not
// publish are reported in Unowned. Missing desired values are added in
// priority order while the target has room (kept values, unowned ones
// included, take their places first); the rest go to Dropped. Final is the
// kept values in current's order followed by Add.
//
// Owned is what certsync owns once Final is written: Add plus the published
// values still desired and present. A desired value already present but not
// published stays unowned: certsync never claims a value an admin or Entra
// Connect put there, so it will never remove it either.
//
// Duplicates in the inputs are ignored. Every field of the result is nil,
// not empty, when it holds nothing.
func Diff(desired, published, current []string, limit int) TargetChange {
	want := toSet(desired)
	owned := toSet(published)
	present := toSet(current)

	var ch TargetChange
	var keep []string
	seen := map[string]bool{}
	for _, v := range current {
		if seen[v] {
			continue
		}
		seen[v] = true
		if !owned[v] {
			ch.Unowned = append(ch.Unowned, v)
		}
		if owned[v] && !want[v] {
			ch.Remove = append(ch.Remove, v)
			continue
		}
		keep = append(keep, v)
	}

	considered := map[string]bool{}
	adding := map[string]bool{}
	for _, v := range desired {
		if present[v] || considered[v] {
			continue
		}
		considered[v] = true
		if limit > 0 && len(keep)+len(ch.Add) >= limit {
			ch.Dropped = append(ch.Dropped, v)
			continue
		}
		adding[v] = true
		ch.Add = append(ch.Add, v)
	}

	ch.Final = append(keep, ch.Add...)
	if len(ch.Final) == 0 {
		ch.Final = nil
	}
	for _, v := range ch.Final {
		if adding[v] || (owned[v] && want[v]) {
			ch.Owned = append(ch.Owned, v)
		}
	}
	return ch
}

// SameSet reports whether a and b hold the same values, ignoring order and
// duplicates: the agent uses it to see that a target needs no write.
func SameSet(a, b []string) bool {
	sa, sb := toSet(a), toSet(b)
	if len(sa) != len(sb) {
		return false
	}
	for v := range sa {
		if !sb[v] {
			return false
		}
	}
	return true
}

func toSet(vs []string) map[string]bool {
	s := make(map[string]bool, len(vs))
	for _, v := range vs {
		s[v] = true
	}
	return s
}
