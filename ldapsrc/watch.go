package ldapsrc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
)

// Change notification: how a directory tells certsync that something
// changed, so a pass starts within seconds instead of at the next poll. A
// notification is only a trigger: what changed is still found through the
// change-tracking watermark (Read), so a lost or spurious notification
// costs a late or an empty incremental pass, never a wrong one.
const (
	// WatchAuto uses the directory's mechanism when it offers one.
	WatchAuto = "auto"
	// WatchOff never listens: passes come every schedule.interval.
	WatchOff = "off"
)

// WatchModes lists the values of changeNotification.
func WatchModes() []string { return []string{WatchAuto, WatchOff} }

// ErrNoWatch: the directory offers no change notification certsync can
// use (or it is turned off); polling is the only way.
var ErrNoWatch = errors.New("no change notification")

// How Watch listens, by the server's controls.
const (
	// watchAD is Active Directory's LDAP_SERVER_NOTIFICATION_OID control:
	// the filter must be (objectClass=*), subtree only at the root of a
	// naming context, at most 5 per connection, lost on disconnect.
	watchAD = "ad-notification"
	// watchSyncrepl is RFC 4533 refreshAndPersist (OpenLDAP's syncprov).
	watchSyncrepl = "syncrepl"
)

// Watch connects on a connection of its own and calls changed each time
// the directory reports a change that may concern the users in scope,
// until ctx ends (nil) or the connection fails (the error): the caller
// registers again and reads again, since notifications sent while nobody
// listened are lost. It returns ErrNoWatch when the server offers nothing
// to listen to. ready, when not nil, is called once the registration is in
// place. changed must not block.
func Watch(ctx context.Context, cfg Config, log *zap.Logger, ready, changed func()) error {
	if log == nil {
		log = zap.NewNop()
	}
	s, err := Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer s.Close()
	conn, err := s.connection(ctx)
	if err != nil {
		return err
	}
	var st Stats
	dse, err := s.readRootDSE(ctx, conn, &st)
	if err != nil {
		return err
	}
	how, base, err := s.watchPlan(dse)
	if err != nil {
		return err
	}
	// The registration is a search that never ends: no operation timeout.
	conn.SetTimeout(0)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var resp ldap.Response
	switch how {
	case watchAD:
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"1.1"}, []ldap.Control{ldap.NewControlMicrosoftNotification()})
		resp = conn.SearchAsync(ctx, req, 64)
	case watchSyncrepl:
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			s.cfg.Filter, []string{"1.1"}, nil)
		resp = conn.Syncrepl(ctx, req, 64, ldap.SyncRequestModeRefreshAndPersist, nil, false)
	}
	log.Info("ldapsrc: listening for changes", zap.String("url", s.cfg.URL), zap.String("how", how), zap.String("base", base))
	// Syncrepl first sends the current content (the refresh phase), then
	// an intermediate message, then the changes: only those count. AD's
	// notifications are all changes.
	persisting := how == watchAD
	if ready != nil && persisting {
		ready()
	}
	for resp.Next() {
		switch {
		case resp.Entry() != nil && persisting:
			changed()
		case resp.Entry() == nil && !persisting && refreshDone(resp.Controls()):
			persisting = true
			if ready != nil {
				ready()
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := resp.Err(); err != nil {
		return fmt.Errorf("ldapsrc: change notification from %s (%s): %w", s.cfg.URL, how, err)
	}
	return fmt.Errorf("ldapsrc: change notification from %s (%s): the server ended the registration", s.cfg.URL, how)
}

// refreshDone reports whether an intermediate syncrepl message ends the
// refresh phase.
func refreshDone(cs []ldap.Control) bool {
	for _, c := range cs {
		info, ok := c.(*ldap.ControlSyncInfo)
		if !ok {
			continue
		}
		switch {
		case info.RefreshPresent != nil:
			return info.RefreshPresent.RefreshDone
		case info.RefreshDelete != nil:
			return info.RefreshDelete.RefreshDone
		}
	}
	return false
}

// watchPlan picks how to listen on this server and at which base: AD's
// notification control watches a whole naming context (subtree is refused
// below its root), so it listens at the naming context holding the base
// DN and may report changes outside the filter (an empty incremental pass
// then follows); syncrepl watches the configured base and filter.
func (s *Source) watchPlan(d rootDSE) (how, base string, err error) {
	if strings.EqualFold(s.cfg.ChangeNotification, WatchOff) {
		return "", "", ErrNoWatch
	}
	switch {
	case d.supports(ldap.ControlTypeMicrosoftNotification):
		nc := namingContextOf(s.cfg.BaseDN, d)
		if nc == "" {
			return "", "", fmt.Errorf("ldapsrc: %s: no naming context holds base DN %q: cannot register for change notification", s.cfg.URL, s.cfg.BaseDN)
		}
		return watchAD, nc, nil
	case d.supports(ldap.ControlTypeSyncRequest):
		return watchSyncrepl, s.cfg.BaseDN, nil
	}
	return "", "", ErrNoWatch
}
