package agent

import (
	"fmt"
	"strings"
	"time"

	"github.com/certsync/certsync/state"
)

// removalWindow is how far back the deletion limit looks: the users that
// lost values in the passes of the last removalWindow count towards the
// limit with this pass's, so that many small passes cannot strip what one
// large pass may not. --allow-deletes accepts this pass's removals and
// those before it in the window: the window starts afresh after it.
const removalWindow = 24 * time.Hour

// metaRemovals is the state meta key of the removal history.
const metaRemovals = "guard/removals"

// removal is one applied pass that left users with fewer values.
type removal struct {
	At    time.Time `json:"at"`
	Users int       `json:"users"`
}

// recentRemovals is the removal history inside the window before now.
func (a *Agent) recentRemovals(now time.Time) ([]removal, error) {
	var all []removal
	if _, err := a.store.Meta(metaRemovals, &all); err != nil {
		return nil, fmt.Errorf("agent: removal history: %w", err)
	}
	var in []removal
	for _, r := range all {
		if now.Sub(r.At) < removalWindow && !r.At.After(now) {
			in = append(in, r)
		}
	}
	return in, nil
}

// noteRemovals adds p's removals to the history committed with p (meta);
// accepted says the guard had tripped and --allow-deletes accepted it.
func (a *Agent) noteRemovals(p *Plan, accepted bool, meta map[string]any) {
	if p.Guard.UsersRemoving == 0 && !accepted {
		return
	}
	var keep []removal
	if !accepted {
		keep = p.Guard.recent
	}
	if p.Guard.UsersRemoving > 0 {
		keep = append(keep, removal{At: p.Started, Users: p.Guard.UsersRemoving})
	}
	if accepted {
		// What the admin accepted no longer counts against later passes.
		keep = nil
	}
	meta[metaRemovals] = keep
}

// Guard is the verdict of the deletion limit on this plan.
type Guard struct {
	Tripped          bool
	Reason           string
	UsersRemoving    int
	UsersInState     int
	UsersPublished   int // users whose records hold values: the percent limit's base
	MaxDeletes       int
	MaxDeletePercent int
	// UsersRemovedBefore are the users that lost values in the passes of
	// the last removalWindow: they count towards the limits too.
	UsersRemovedBefore int
	recent             []removal
}

// guard applies the deletion limit (DESIGN.md §3).
// The percent limit is of the users certsync publishes values for, not of
// every record: records of users without values (kept values only, a
// problem remembered) would inflate it.
func (a *Agent) guard(s Stats, published int, drops []string) Guard {
	var recent []removal
	var err error
	if s.UsersRemoving > 0 {
		recent, err = a.recentRemovals(a.now())
	}
	return judgeRemovals(a.safety, s, published, drops, recent, err)
}

// judgeRemovals is the guard's verdict given the removal history inside
// the window (recent), or the error that kept it from being read.
func judgeRemovals(safety Safety, s Stats, published int, drops []string, recent []removal, histErr error) Guard {
	g := Guard{UsersRemoving: s.UsersRemoving, UsersInState: s.UsersInState, UsersPublished: published, MaxDeletes: safety.MaxDeletes, MaxDeletePercent: safety.MaxDeletePercent}
	var why []string
	if histErr != nil && g.UsersRemoving > 0 {
		// Without the history the window cannot be judged: removals wait.
		why = append(why, histErr.Error())
	}
	g.recent = recent
	for _, r := range recent {
		g.UsersRemovedBefore += r.Users
	}
	// Users are counted once per pass that removes from them; a user in
	// two passes of the window counts twice, which errs on the safe side.
	total := g.UsersRemoving + g.UsersRemovedBefore
	before := ""
	if g.UsersRemovedBefore > 0 {
		before = fmt.Sprintf(" (%d in this pass, %d in the passes of the last %s)", g.UsersRemoving, g.UsersRemovedBefore, removalWindow)
	}
	if g.MaxDeletes > 0 && g.UsersRemoving > 0 && total > g.MaxDeletes {
		why = append(why, fmt.Sprintf("%d users would lose certificates%s, more than safety.maxDeletes (%d)", total, before, g.MaxDeletes))
	}
	// The percent limit never forbids touching a single user: in a small
	// directory one certificate rotation would otherwise stop every pass.
	if limit := max(1, g.MaxDeletePercent*g.UsersPublished/100); g.MaxDeletePercent > 0 && g.UsersRemoving > 0 && total > limit {
		why = append(why, fmt.Sprintf("%d of the %d users certsync publishes for would lose certificates%s, more than safety.maxDeletePercent (%d%%, %d users)", total, g.UsersPublished, before, g.MaxDeletePercent, limit))
	}
	if g.UsersRemoving > 0 {
		why = append(why, drops...)
	}
	if len(why) > 0 {
		g.Tripped = true
		g.Reason = strings.Join(why, "; ")
	}
	return g
}

// publishedUsers counts the records that hold values certsync published,
// but not those kept only for deleted accounts (GoneSince): no one signs in
// with those.
func (a *Agent) publishedUsers() (int, error) {
	n := 0
	err := a.store.ForEach(func(rec state.Record) error {
		live := false
		for _, tr := range rec.Targets {
			live = live || tr.GoneSince.IsZero() && (len(tr.Values) > 0 || len(tr.Pending) > 0)
		}
		if live {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("agent: reading state: %w", err)
	}
	return n, nil
}
