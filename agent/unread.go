package agent

import (
	"fmt"
	"strings"

	"github.com/certsync/certsync/mapping"
)

// unreadPlan is the report of a user the directory gave values certsync
// did not read (larger than the source's limits, mapping.SourceUser.Unread).
// What those values hold is unknown, so the user is changed in no way: a
// value too large to read never withdraws what it may carry.
func unreadPlan(source string, u mapping.SourceUser) *UserPlan {
	up := &UserPlan{Anchor: u.Anchor, Source: source, DN: u.DN, Name: u.Name()}
	var reasons []string
	for _, v := range u.Unread {
		up.Rejected = append(up.Rejected, mapping.Rejection{Attribute: v.Attribute, Code: mapping.RejectTooLarge,
			Reason: fmt.Sprintf("%s: %s", up.Name, v.Reason)})
		reasons = append(reasons, v.Reason)
	}
	up.Problem = fmt.Sprintf("%s (%s): certificate values could not be read: %s; nothing is changed for this user until they can",
		up.Name, u.DN, strings.Join(reasons, "; "))
	return up
}
