package agent

import (
	"fmt"
	"strings"

	"github.com/certsync/certsync/state"
)

// Guard is the verdict of the deletion limit on this plan.
type Guard struct {
	Tripped          bool
	Reason           string
	UsersRemoving    int
	UsersInState     int
	UsersPublished   int // users whose records hold values: the percent limit's base
	MaxDeletes       int
	MaxDeletePercent int
}

// guard applies the deletion limit (DESIGN.md §3).
// The percent limit is of the users certsync publishes values for, not of
// every record: records of users without values (kept values only, a
// problem remembered) would inflate it.
func (a *Agent) guard(s Stats, published int, drops []string) Guard {
	g := Guard{UsersRemoving: s.UsersRemoving, UsersInState: s.UsersInState, UsersPublished: published, MaxDeletes: a.safety.MaxDeletes, MaxDeletePercent: a.safety.MaxDeletePercent}
	var why []string
	if g.MaxDeletes > 0 && g.UsersRemoving > g.MaxDeletes {
		why = append(why, fmt.Sprintf("%d users would lose certificates, more than safety.maxDeletes (%d)", g.UsersRemoving, g.MaxDeletes))
	}
	// The percent limit never forbids touching a single user: in a small
	// directory one certificate rotation would otherwise stop every pass.
	if limit := max(1, g.MaxDeletePercent*g.UsersPublished/100); g.MaxDeletePercent > 0 && g.UsersRemoving > limit {
		why = append(why, fmt.Sprintf("%d of the %d users certsync publishes for would lose certificates, more than safety.maxDeletePercent (%d%%, %d users)", g.UsersRemoving, g.UsersPublished, g.MaxDeletePercent, limit))
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

// publishedUsers counts the records that hold values certsync published.
func (a *Agent) publishedUsers() (int, error) {
	n := 0
	err := a.store.ForEach(func(rec state.Record) error {
		if holdsValues(rec) {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("agent: reading state: %w", err)
	}
	return n, nil
}
