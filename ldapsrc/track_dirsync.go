package ldapsrc

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/certsync/certsync/mapping"
)

const (
	// dirSyncMaxBytes is DirSync's MaxBytes: how much one response may
	// carry before the DC says "more data" and wants the next request.
	dirSyncMaxBytes = 1 << 20
	// reReadBatch is how many objectGUIDs one re-read filter names.
	reReadBatch   = 100
	attrIsDeleted = "isDeleted"
	// replicationRight is what Active Directory calls the right DirSync
	// needs without the object-security flag.
	replicationRight = `"Replicating Directory Changes" (DS-Replication-Get-Changes, 1131f6aa-9c07-11d1-f79f-00c04fc2dcd2)`
)

// readDirSync reads with Active Directory's DirSync control and returns
// the cookie for the next read.
//
// A full read takes the cookie first, asking only for objectGUIDs, then
// reads every user with the normal paged search: changes made while the
// full read runs are seen again by the next read rather than lost.
//
// An incremental read asks DirSync what changed since the cookie. DirSync
// returns only the changed attributes of a changed object, and an object
// whose certificate did not change would look like one without
// certificates, so every changed object is read again in full, by
// objectGUID under BaseDN with the configured filter (batched). Deleted
// objects (isDeleted) come back as tombstones outside BaseDN and are
// reported in Deleted whatever their former place: the caller ignores
// anchors it never published. Users that merely left the filter are not
// reported; the periodic full pass finds them.
func (s *Source) readDirSync(ctx context.Context, conn *ldap.Conn, d rootDSE, q userQuery, prev watermark, res *ReadResult, fn func(mapping.SourceUser) error) ([]byte, error) {
	nc := namingContextOf(s.cfg.BaseDN, d)
	if res.Full {
		cookie, err := s.dirSync(ctx, conn, nc, s.cfg.Filter, nil, []string{attrObjectGUID}, &res.Stats, func(*ldap.Entry) {})
		if err != nil {
			return nil, err
		}
		if err := s.readUsers(ctx, conn, q, &res.Stats, fn); err != nil {
			return nil, err
		}
		return cookie, nil
	}

	var changed [][]byte
	seen := map[string]bool{}
	// No attribute list: DirSync may then leave out objects whose only
	// changes are to attributes not asked for, and a user entering the
	// filter through, say, its department would be missed. The changed
	// values it returns are small and thrown away.
	var attrs []string
	// Tombstones keep few attributes and may no longer match the filter.
	filter := fmt.Sprintf("(|%s(%s=TRUE))", s.cfg.Filter, attrIsDeleted)
	cookie, err := s.dirSync(ctx, conn, nc, filter, prev.Cookie, attrs, &res.Stats, func(e *ldap.Entry) {
		guid := e.GetRawAttributeValue(attrObjectGUID)
		if len(guid) != guidLen {
			s.log.Warn("ldapsrc: DirSync returned an object without a usable objectGUID; ignored",
				zap.String("dn", e.DN), zap.Int("bytes", len(guid)))
			return
		}
		anchor := base64.StdEncoding.EncodeToString(guid)
		if seen[anchor] {
			return
		}
		seen[anchor] = true
		if strings.EqualFold(e.GetAttributeValue(attrIsDeleted), "TRUE") {
			res.Deleted = append(res.Deleted, anchor)
			return
		}
		changed = append(changed, guid)
	})
	if err != nil {
		return nil, err
	}
	s.log.Debug("ldapsrc: DirSync changes", zap.String("nc", nc), zap.Int("changed", len(changed)), zap.Int("deleted", len(res.Deleted)))
	for batch := range slices.Chunk(changed, reReadBatch) {
		var f strings.Builder
		fmt.Fprintf(&f, "(&%s(|", s.cfg.Filter)
		for _, g := range batch {
			fmt.Fprintf(&f, "(%s=%s)", attrObjectGUID, escapeBytes(g))
		}
		f.WriteString("))")
		bq := q
		bq.filter = f.String()
		if err := s.readUsers(ctx, conn, bq, &res.Stats, fn); err != nil {
			return nil, err
		}
	}
	return cookie, nil
}

// dirSync runs DirSync from cookie until the DC has no more data, passing
// every object to each, and returns the final cookie.
func (s *Source) dirSync(ctx context.Context, conn *ldap.Conn, nc, filter string, cookie []byte, attrs []string, st *Stats, each func(*ldap.Entry)) ([]byte, error) {
	for round := 1; ; round++ {
		ctl := ldap.NewRequestControlDirSync(0, dirSyncMaxBytes, cookie)
		req := ldap.NewSearchRequest(nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs,
			[]ldap.Control{ctl})
		st.Operations++
		entries, controls, err := s.search(ctx, conn, req)
		if err != nil {
			if ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
				return nil, fmt.Errorf("ldapsrc: DirSync on %s at %s refused: %s needs the %s right on %s (or use changeTracking usn): %w",
					nc, s.cfg.URL, s.cfg.Bind.Username, replicationRight, nc, err)
			}
			return nil, fmt.Errorf("ldapsrc: DirSync on %s at %s (request %d): %w", nc, s.cfg.URL, round, err)
		}
		st.Pages++
		resp, ok := ldap.FindControl(controls, ldap.ControlTypeDirSync).(*ldap.ControlDirSync)
		if !ok || len(resp.Cookie) == 0 {
			return nil, fmt.Errorf("ldapsrc: DirSync on %s at %s (request %d): the answer carries no DirSync cookie", nc, s.cfg.URL, round)
		}
		// Not counted in Entries: the objects DirSync names are read again
		// (or are tombstones), and a full read reads every user anyway.
		for _, e := range entries {
			each(e)
		}
		cookie = resp.Cookie
		if resp.Flags == 0 { // no more data
			return cookie, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("ldapsrc: DirSync on %s at %s: %w", nc, s.cfg.URL, err)
		}
	}
}

// namingContextOf is the naming context holding base, where DirSync must
// start: the longest naming context that is base or above it.
func namingContextOf(base string, d rootDSE) string {
	bdn, err := ldap.ParseDN(base)
	if err != nil {
		return d.defaultNamingContext
	}
	best, bestLen := d.defaultNamingContext, -1
	for _, nc := range d.namingContexts {
		ndn, err := ldap.ParseDN(nc)
		if err != nil {
			continue
		}
		if (ndn.EqualFold(bdn) || ndn.AncestorOfFold(bdn)) && len(ndn.RDNs) > bestLen {
			best, bestLen = nc, len(ndn.RDNs)
		}
	}
	return best
}

// escapeBytes writes b as a filter value of escaped bytes (RFC 4515).
func escapeBytes(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, `\%02x`, c)
	}
	return sb.String()
}
