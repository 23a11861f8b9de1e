package agent

import (
	"fmt"
	"time"

	"github.com/certsync/certsync/mapping"
)

// metaTracking is the state meta key of a source's change-tracking
// record: "tracking/<source name>".
func metaTracking(source string) string { return "tracking/" + source }

// metaTrackingV1 is where certsync kept the one directory's record before
// it read several; the first source takes it over.
const metaTrackingV1 = "tracking"

// readTracking reads source's change-tracking record; false when no pass
// recorded one yet.
func (a *Agent) readTracking(source string) (tracking, bool, error) {
	var t tracking
	found, err := a.store.Meta(metaTracking(source), &t)
	if err == nil && !found && source == a.sources[0].Name {
		found, err = a.store.Meta(metaTrackingV1, &t)
	}
	if err != nil {
		return tracking{}, false, fmt.Errorf("agent: change tracking of %s: %w", source, err)
	}
	return t, found, nil
}

// tracking is what an incremental pass needs from the passes before it.
// It is committed in the same state transaction as a pass's results, so
// it never claims more than the state holds.
type tracking struct {
	Version     int       `json:"v"`
	Fingerprint string    `json:"fingerprint"`
	CRLs        string    `json:"crls,omitempty"`      // digest of the CRLs verdicts were made with
	Watermark   []byte    `json:"watermark,omitempty"` // the directory's, opaque
	FullAt      time.Time `json:"fullAt"`              // start of the last full read
	// NextReview is the earliest instant at which a verdict may change
	// without the directory changing (an accepted certificate expires, a
	// not-yet-valid one starts): a full read is due then, because an
	// incremental read would not return those users.
	NextReview time.Time `json:"nextReview,omitzero"`
}

const trackingVersion = 1

// sinceFor decides whether an incremental pass may read only changes, and
// if not, why not.
func (a *Agent) sinceFor(t tracking, found bool, now time.Time, crls string) ([]byte, string) {
	switch {
	case !found || t.Version != trackingVersion:
		return nil, "no change-tracking watermark yet"
	case t.Fingerprint != a.track.Fingerprint:
		return nil, "the trusted CAs, policy or targets changed since the last full read"
	case t.CRLs != crls:
		return nil, "the issuing CAs published new CRLs"
	case t.Watermark == nil:
		return nil, "the directory offers no change tracking"
	case a.track.FullInterval > 0 && !now.Before(t.FullAt.Add(a.track.FullInterval)):
		return nil, "schedule.fullInterval has passed since the last full read (" + t.FullAt.UTC().Format(time.RFC3339) + ")"
	case !t.NextReview.IsZero() && !now.Before(t.NextReview):
		return nil, "a certificate expired or became valid at " + t.NextReview.UTC().Format(time.RFC3339)
	}
	return t.Watermark, ""
}

// nextReview is the earliest instant after now at which ev's verdict may
// change by the clock alone.
func nextReview(ev mapping.Evaluation, now time.Time) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, c := range ev.Accepted {
		consider(afterExpiry(c.Cert.NotAfter))
	}
	for _, r := range ev.Rejected {
		if r.Code == mapping.RejectNotYetValid {
			consider(r.NotBefore)
		}
	}
	return next
}

// afterExpiry is when a certificate that expires at notAfter is to be
// judged again.
func afterExpiry(notAfter time.Time) time.Time { return notAfter.Add(time.Second) }

// earlier is the earlier of two review times; zero means none.
func earlier(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// TrackingStatus is what `certsync status` shows of a source's change
// tracking.
type TrackingStatus struct {
	Source       string
	FullAt       time.Time // start of the last full read
	NextReview   time.Time // when a certificate's validity forces a full read; zero: none due
	HasWatermark bool      // the directory tracks changes: passes between full reads are incremental
}

// ReadTrackingStatus reads the change-tracking records of the named
// sources from a state file (the first source's name first), leaving out
// sources no pass has recorded one for yet.
func ReadTrackingStatus(store interface {
	Meta(key string, v any) (bool, error)
}, sources []string) ([]TrackingStatus, error) {
	var out []TrackingStatus
	for i, name := range sources {
		var t tracking
		found, err := store.Meta(metaTracking(name), &t)
		if err == nil && !found && i == 0 {
			found, err = store.Meta(metaTrackingV1, &t)
		}
		if err != nil {
			return nil, fmt.Errorf("agent: change tracking of %s: %w", name, err)
		}
		if found {
			out = append(out, TrackingStatus{Source: name, FullAt: t.FullAt, NextReview: t.NextReview, HasWatermark: t.Watermark != nil})
		}
	}
	return out, nil
}
