package ldapsrc

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/certsync/certsync/mapping"
)

// Change-tracking modes (Config.ChangeTracking).
const (
	TrackAuto      = "auto"            // the best the server offers
	TrackUSN       = "usn"             // Active Directory uSNChanged + highestCommittedUSN
	TrackDirSync   = "dirsync"         // Active Directory DirSync control (reports deletions)
	TrackTimestamp = "modifyTimestamp" // OpenLDAP and other servers
	TrackFull      = "full"            // no tracking: every read is a full read
)

// ReadRequest says what one Read covers.
type ReadRequest struct {
	// Since is the watermark a previous Read returned (ReadResult.Next);
	// nil, or a watermark that no longer applies, reads every user.
	Since []byte
}

// ReadResult is what a Read saw.
type ReadResult struct {
	Stats
	// Full: every user in scope was read, so a user not returned has left
	// the scope (deleted, or out of the filter).
	Full bool
	// Reason says why a read asked to be incremental was full (no
	// watermark, another DC, a restored DC, tracking off).
	Reason string
	// Next is the watermark for the next read, to be stored in the same
	// state transaction as this read's results; nil when the directory
	// offers no change tracking.
	Next []byte
	// Deleted lists anchors the directory reported deleted (DirSync) on an
	// incremental read.
	Deleted []string
}

// timestampOverlap is how far before the start of a read the next
// modifyTimestamp read begins. modifyTimestamp has one-second granularity,
// is stamped by the server's clock when a modify starts, and a search is
// not a snapshot: an entry modified while the search runs, after the
// search passed it, is not returned. So the next read starts from the
// client's clock at the start of this read minus this overlap: any modify
// this read did not see began after this read started, and its timestamp
// (server clock, truncated to the second) is then at or after the bound
// as long as the server's clock lags the client's by less than the
// overlap, less the time a modify takes to commit. Two minutes covers NTP-
// kept clocks with a wide margin; the cost is that a user changed in the
// last two minutes before a read is read again by the next one (harmless:
// reads are idempotent). A server clock lagging by more is not detectable
// here; the periodic full pass bounds what it could hide.
const timestampOverlap = 2 * time.Minute

// Read streams users to fn like Users: all of them, or, given a usable
// watermark, only those changed since it. Any error means the read is
// incomplete and nothing may be concluded from it: Next is then nil.
//
// Costs, in LDAP operations: a rootDSE read always; on Active Directory
// (usn, dirsync) the DC's invocationId; then the search pages. An
// incremental usn read that finds the DC's highestCommittedUSN unchanged
// sends no search at all.
func (s *Source) Read(ctx context.Context, req ReadRequest, fn func(mapping.SourceUser) error) (ReadResult, error) {
	var res ReadResult
	started := time.Now()
	conn, err := s.connection(ctx)
	if err != nil {
		return res, err
	}
	dse, err := s.readRootDSE(ctx, conn, &res.Stats)
	if err != nil {
		return res, err
	}
	q := s.userQuery(dse)
	if s.cfg.ChangeTracking == TrackFull {
		res.Full, res.Reason = true, "change tracking is off (changeTracking: full)"
		return res, s.readUsers(ctx, conn, q, &res.Stats, fn)
	}
	mode, err := s.resolveMode(dse)
	if err != nil {
		return res, err
	}
	cur := watermark{V: watermarkVersion, Mode: mode, Scope: scopeFingerprint(s.cfg, s.attrs)}
	if mode == TrackUSN || mode == TrackDirSync {
		cur.DNSHostName, cur.USN = dse.dnsHostName, dse.highestCommittedUSN
		if cur.InvocationID, err = s.readInvocationID(ctx, conn, dse, &res.Stats); err != nil {
			return res, err
		}
	}
	prev, reason := s.usable(req.Since, cur)
	res.Full, res.Reason = reason != "", reason
	if res.Full {
		s.log.Debug("ldapsrc: full read", zap.String("url", s.cfg.URL), zap.String("mode", mode), zap.String("reason", reason))
	}

	switch mode {
	case TrackUSN:
		switch {
		case res.Full:
			err = s.readUsers(ctx, conn, q, &res.Stats, fn)
		case cur.USN == prev.USN:
			// Nothing at all was committed on this DC since the watermark.
		default:
			q.filter = fmt.Sprintf("(&%s(%s>=%d))", s.cfg.Filter, attrUSNChanged, prev.USN+1)
			err = s.readUsers(ctx, conn, q, &res.Stats, fn)
		}
	case TrackTimestamp:
		cur.Since = started.Add(-timestampOverlap).UTC().Truncate(time.Second)
		if !res.Full {
			q.filter = fmt.Sprintf("(&%s(%s>=%s))", s.cfg.Filter, attrModifyTimestamp, prev.Since.UTC().Format(generalizedTimeLayout))
		}
		err = s.readUsers(ctx, conn, q, &res.Stats, fn)
		if err == nil && res.Full && res.Entries > 0 {
			// A server that does not keep modifyTimestamp, or hides it from
			// this account, would make every incremental read come back
			// empty: then there is no watermark, and every read is full.
			var visible bool
			if visible, err = s.timestampsVisible(ctx, conn, q, &res.Stats); err == nil && !visible {
				s.log.Warn("ldapsrc: no user in scope shows modifyTimestamp to this account; change tracking is off, every read is full",
					zap.String("url", s.cfg.URL))
				return res, nil
			}
		}
	case TrackDirSync:
		cur.Cookie, err = s.readDirSync(ctx, conn, dse, q, prev, &res, fn)
	default:
		err = fmt.Errorf("ldapsrc: change tracking mode %q not handled", mode)
	}
	if err != nil {
		return res, err
	}
	if res.Next, err = cur.encode(); err != nil {
		return res, err
	}
	return res, nil
}

// userQuery is the configured search, fitted to the server: Active
// Directory's page cap, and its domain-scope control when offered, so a
// search at a domain root is not answered with referrals to the other
// partitions (users are not there, and chasing them would bind elsewhere).
func (s *Source) userQuery(d rootDSE) userQuery {
	q := userQuery{base: s.cfg.BaseDN, filter: s.cfg.Filter, pageSize: s.cfg.PageSize}
	if d.ad && q.pageSize > adMaxPageSize {
		s.log.Debug("ldapsrc: page size clamped to Active Directory's maximum",
			zap.Int("pageSize", q.pageSize), zap.Int("max", adMaxPageSize))
		q.pageSize = adMaxPageSize
	}
	if d.supports(ldap.ControlTypeMicrosoftDomainScope) {
		q.controls = append(q.controls, ldap.NewControlString(ldap.ControlTypeMicrosoftDomainScope, false, ""))
	}
	return q
}

// timestampsVisible reports whether at least one user in scope shows a
// modifyTimestamp to this account (one search, one entry at most).
func (s *Source) timestampsVisible(ctx context.Context, conn *ldap.Conn, q userQuery, st *Stats) (bool, error) {
	req := ldap.NewSearchRequest(q.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false,
		fmt.Sprintf("(&%s(%s=*))", s.cfg.Filter, attrModifyTimestamp), []string{"1.1"}, q.controls)
	st.Operations++
	entries, _, err := s.search(ctx, conn, req)
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return false, fmt.Errorf("ldapsrc: check that %s shows modifyTimestamp under %s: %w", s.cfg.URL, q.base, err)
	}
	return len(entries) > 0 || err != nil, nil
}

// usable decodes since and compares it with the watermark this read will
// end with. reason is empty when an incremental read may start from prev;
// otherwise it says why every user must be read.
func (s *Source) usable(since []byte, cur watermark) (prev watermark, reason string) {
	if since == nil {
		return prev, "no watermark (first read)"
	}
	prev, err := decodeWatermark(since)
	switch {
	case err != nil:
		return prev, fmt.Sprintf("watermark unusable: %v", err)
	case prev.Mode != cur.Mode:
		return prev, fmt.Sprintf("change tracking changed from %s to %s", prev.Mode, cur.Mode)
	case prev.Scope != cur.Scope:
		return prev, "base DN, filter or attributes changed since the watermark"
	case cur.Mode == TrackTimestamp:
		return prev, ""
	case !strings.EqualFold(prev.DNSHostName, cur.DNSHostName):
		reason = fmt.Sprintf("another DC: watermark from %s, now reading from %s", prev.DNSHostName, cur.DNSHostName)
	case prev.InvocationID != cur.InvocationID:
		reason = fmt.Sprintf("DC restored (invocationId changed): %s had invocationId %s, now %s",
			cur.DNSHostName, prev.InvocationID, cur.InvocationID)
	case cur.USN < prev.USN:
		reason = fmt.Sprintf("DC %s went back in time: highestCommittedUSN %d, watermark %d", cur.DNSHostName, cur.USN, prev.USN)
	default:
		return prev, ""
	}
	s.log.Info("ldapsrc: watermark is from another DC or from before a restore; reading every user",
		zap.String("url", s.cfg.URL), zap.String("reason", reason))
	return prev, reason
}

// certificateProbeEntries is how many users the certificate probe asks
// for: a server that matches a presence filter on an attribute it then
// withholds shows up as entries without values.
const certificateProbeEntries = 5

// CertificatesVisible reports whether at least one user in scope shows a
// value of a certificate attribute to this account (one search, a few
// entries at most). An account that may not read userCertificate or
// userSMIMECertificate (an ACL, a global catalog or RODC without them)
// sees entries without them, which a read cannot tell from users without
// certificates: this probe can.
func (s *Source) CertificatesVisible(ctx context.Context) (bool, error) {
	conn, err := s.connection(ctx)
	if err != nil {
		return false, err
	}
	dse, err := s.readRootDSE(ctx, conn, &Stats{})
	if err != nil {
		return false, err
	}
	q := s.userQuery(dse)
	var f strings.Builder
	fmt.Fprintf(&f, "(&%s(|", s.cfg.Filter)
	for _, a := range s.cfg.CertificateAttributes {
		fmt.Fprintf(&f, "(%s=*)", ldap.EscapeFilter(a))
	}
	f.WriteString("))")
	req := ldap.NewSearchRequest(q.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, certificateProbeEntries, 0, false,
		f.String(), s.cfg.CertificateAttributes, q.controls)
	entries, _, err := s.search(ctx, conn, req)
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return false, fmt.Errorf("ldapsrc: probe whether %s shows certificate attributes under %s: %w", s.cfg.URL, q.base, err)
	}
	for _, e := range entries {
		u, _ := s.conv.user(e)
		if len(u.Values) > 0 {
			return true, nil
		}
	}
	return false, nil
}
