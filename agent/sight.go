package agent

import (
	"context"
	"fmt"

	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// CertificateProbe is a source that can tell whether its account sees
// certificate attributes at all (ldapsrc.Source). A directory returns an
// entry without the attributes the account may not read, so a user
// without certificates and a certificate the account cannot see look the
// same in a read; the probe tells them apart.
type CertificateProbe interface {
	CertificatesVisible(ctx context.Context) (bool, error)
}

// certSight counts the users of one directory read that certsync
// publishes for (their record holds values) but that the read returned
// without a single certificate value: absence that must be explained
// before it is taken as a removal.
type certSight struct {
	bare      int    // users read without any certificate value whose record holds values
	firstBare string // the first one's DN, for the message
}

// note looks at one user of the read; only users without any certificate
// value cost a state lookup.
func (c *certSight) note(st Store, u mapping.SourceUser) error {
	if len(u.Values) > 0 || len(u.Unread) > 0 {
		return nil
	}
	rec, ok, err := st.Get(u.Anchor)
	if err != nil {
		return fmt.Errorf("agent: state for %s: %w", u.DN, err)
	}
	if ok && holdsValues(rec) {
		c.bare++
		if c.firstBare == "" {
			c.firstBare = u.DN
		}
	}
	return nil
}

// suddenDrop is the share of published users (in percent) that may come
// back from a full read without any certificate value before the pass
// asks for --allow-deletes, whatever the deletion limits say: losing
// every certificate at once is what a lost read right looks like.
const suddenDrop = 50

// checkSight decides whether a finished read of s can be believed about
// the users it returned without certificates. When some of them hold
// values certsync published, it asks the directory whether its account
// sees certificate attributes at all: if not, or when a full read finds
// most published users without any certificate at once, the pass trips
// the deletion guard with the cause (Plan.Guard): nothing is removed
// unless --allow-deletes says the absence is real. A probe that fails
// voids the read.
func (pl *planner) checkSight(ctx context.Context, s NamedSource, c certSight, full bool) error {
	if c.bare == 0 {
		return nil
	}
	if probe, ok := s.Source.(CertificateProbe); ok {
		visible, err := probe.CertificatesVisible(ctx)
		if err != nil {
			return fmt.Errorf("%d users certsync publishes for came back without certificates (first: %s), and checking that the account can read certificate attributes failed: %w; nothing will be changed for its users",
				c.bare, c.firstBare, err)
		}
		if !visible {
			pl.drops = append(pl.drops, fmt.Sprintf("directory %s: %d users certsync publishes for came back without certificates (first: %s), and no user in scope shows a certificate attribute to this account: it likely lacks read rights on them (an ACL, a global catalog or read-only DC without them)",
				s.Name, c.bare, c.firstBare))
			return nil
		}
	}
	if !full || c.bare < 2 {
		return nil
	}
	holders := 0
	err := pl.a.store.ForEachBrief(func(b state.Brief) error {
		if pl.a.sourceOf(state.Record{Source: b.Source}) == s.Name && b.HoldsValues() {
			holders++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("agent: reading state: %w", err)
	}
	if c.bare*100 >= suddenDrop*holders {
		pl.drops = append(pl.drops, fmt.Sprintf("directory %s: %d of the %d users certsync publishes for came back without any certificate (first: %s); check the account's read rights on the certificate attributes",
			s.Name, c.bare, holders, c.firstBare))
	}
	return nil
}
