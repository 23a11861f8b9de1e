package ldapsrc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/certsync/certsync/mapping"
)

// Stats counts what one Users or Read call saw and cost.
type Stats struct {
	Entries         int // entries read from the directory, skipped ones included
	Pages           int // search responses (pages) received
	SkippedNoAnchor int // entries without a usable anchor, not passed to fn
	// Operations counts the LDAP requests sent: every search page, the
	// rootDSE read, the DC's invocationId lookup, DirSync requests and the
	// re-reads of the objects DirSync reported, and abandon requests.
	Operations int
}

// abandonTimeout bounds the courtesy request that releases a paged search
// stopped early; it runs even when ctx is already cancelled.
const abandonTimeout = 5 * time.Second

// Users streams every entry under BaseDN matching Filter, page by page: fn
// is called for each user of a page before the next page is requested, so
// memory stays bounded by the page size whatever the directory size.
//
// Any error (search failure, cut-short paging, fn's error, ctx cancelled)
// is returned, and the caller must then treat the read as INCOMPLETE.
// Entries without the anchor attribute are logged (warn, DN named) and
// counted, not passed.
func (s *Source) Users(ctx context.Context, fn func(mapping.SourceUser) error) (Stats, error) {
	var st Stats
	conn, err := s.connection(ctx)
	if err != nil {
		return st, err
	}
	err = s.readUsers(ctx, conn, userQuery{base: s.cfg.BaseDN, filter: s.cfg.Filter, pageSize: s.cfg.PageSize}, &st, fn)
	return st, err
}

// userQuery is one paged user search.
type userQuery struct {
	base     string
	filter   string
	pageSize int
	controls []ldap.Control // besides paging, e.g. Active Directory's domain scope
}

// readUsers runs q on conn page by page, passing each user with an anchor
// to fn, and adds what it saw and sent to st. Any error means the read is
// incomplete. conn is given, not redialled, so that a Read's watermark
// and its search come from the same server.
func (s *Source) readUsers(ctx context.Context, conn *ldap.Conn, q userQuery, st *Stats, fn func(mapping.SourceUser) error) error {
	startEntries, startPages := st.Entries, st.Pages
	fail := func(err error) error {
		return fmt.Errorf("ldapsrc: read users under %s from %s (%d entries, %d pages read): %w",
			q.base, s.cfg.URL, st.Entries-startEntries, st.Pages-startPages, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	paging := ldap.NewControlPaging(uint32(q.pageSize))
	controls := append([]ldap.Control{paging}, q.controls...)
	req := ldap.NewSearchRequest(q.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, q.filter, s.attrs, controls)
	abandon := func(cookie []byte) {
		if len(cookie) > 0 {
			st.Operations++
		}
		s.abandon(ctx, conn, req, paging, cookie)
	}
	for {
		// The whole page is read before fn sees any of it: go-ldap silently
		// drops a response its reader cannot hand over within OpTimeout, so
		// a slow fn must never sit between the wire and the page.
		st.Operations++
		entries, controls, err := s.search(ctx, conn, req)
		if err != nil {
			return fail(fmt.Errorf("page %d: %w", st.Pages-startPages+1, err))
		}
		st.Pages++
		// A server that ignores the paging control sends everything in one
		// response and no control back: that response is the whole result.
		var cookie []byte
		if c, ok := ldap.FindControl(controls, ldap.ControlTypePaging).(*ldap.ControlPaging); ok {
			cookie = c.Cookie
		}
		for i, e := range entries {
			entries[i] = nil // let the collector take entries already handed on
			st.Entries++
			u, err := s.conv.user(e)
			if err != nil {
				st.SkippedNoAnchor++
				s.log.Warn("ldapsrc: entry skipped: no usable anchor",
					zap.String("dn", e.DN), zap.String("anchorAttribute", s.cfg.AnchorAttribute), zap.String("reason", err.Error()))
				continue
			}
			if err := ctx.Err(); err != nil {
				abandon(cookie)
				return fail(err)
			}
			if err := fn(u); err != nil {
				abandon(cookie)
				return fail(fmt.Errorf("stopped at %s: %w", e.DN, err))
			}
		}
		s.log.Debug("ldapsrc: page read",
			zap.String("base", q.base), zap.Int("page", st.Pages-startPages), zap.Int("pageEntries", len(entries)),
			zap.Int("entries", st.Entries), zap.Int("skippedNoAnchor", st.SkippedNoAnchor))
		if len(cookie) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			abandon(cookie)
			return fail(err)
		}
		paging.SetCookie(cookie)
	}
}

// abandon tells the server a paged search stopped early (RFC 2696: page
// size 0 with the last cookie) so it frees the result set; Active Directory
// keeps only a few per connection. Best effort: failures are only logged.
func (s *Source) abandon(ctx context.Context, conn *ldap.Conn, req *ldap.SearchRequest, paging *ldap.ControlPaging, cookie []byte) {
	if len(cookie) == 0 {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abandonTimeout)
	defer cancel()
	paging.PagingSize = 0
	paging.SetCookie(cookie)
	if _, _, err := s.search(actx, conn, req); err != nil {
		s.log.Debug("ldapsrc: abandoning paged search failed", zap.String("base", req.BaseDN), zap.Error(err))
	}
}

// search runs one search request (one page when it carries the paging
// control) and returns its entries and the controls of its response.
// go-ldap's Search takes no context; SearchAsync does, and stopping it
// leaves the connection usable.
func (s *Source) search(ctx context.Context, conn *ldap.Conn, req *ldap.SearchRequest) ([]*ldap.Entry, []ldap.Control, error) {
	var entries []*ldap.Entry
	var controls []ldap.Control
	resp := conn.SearchAsync(ctx, req, 64)
	for resp.Next() {
		if e := resp.Entry(); e != nil {
			entries = append(entries, e)
		} else if ref := resp.Referral(); ref != "" {
			// Active Directory refers subtree searches at a domain root to
			// its other partitions; users are not there.
			s.log.Debug("ldapsrc: referral not followed", zap.String("base", req.BaseDN), zap.String("referral", ref))
		}
		controls = append(controls, resp.Controls()...)
	}
	if err := resp.Err(); err != nil {
		return nil, nil, err
	}
	// SearchAsync reports a cancelled context, and a search on a connection
	// already closing, as a clean end without error: never take those for
	// a complete answer.
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if conn.IsClosing() {
		return nil, nil, errors.New("connection closed before the search completed")
	}
	return entries, controls, nil
}
