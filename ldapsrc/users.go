package ldapsrc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/certsync/certsync/mapping"
)

// Stats counts what one Users or Read call saw and cost.
type Stats struct {
	Entries int // entries read from the directory, skipped ones included
	// Pages counts search responses (pages) read. A page fetched ahead
	// and dropped because the read stopped is not counted; its request
	// is, in Operations.
	Pages int
	// SkippedNoAnchor counts entries without a usable anchor, not passed
	// to fn. Any such entry makes a user read incomplete: its user cannot
	// be told apart from one that left the scope.
	SkippedNoAnchor int
	// Referrals counts search continuation references received: parts of
	// the scope held by another server, not read. Any makes a user read
	// incomplete.
	Referrals int
	// Operations counts the LDAP requests sent: every search page, the
	// rootDSE read, the DC's invocationId lookup, DirSync requests and the
	// re-reads of the objects DirSync reported, and abandon requests.
	Operations int
}

// abandonTimeout bounds the courtesy request that releases a paged search
// stopped early; it runs even when ctx is already cancelled.
const abandonTimeout = 5 * time.Second

// Users streams every entry under BaseDN matching Filter, page by page: fn
// is called for each user of a page while the next page (one at most) is
// read, so memory stays bounded by about two pages whatever the directory
// size.
//
// Any error (search failure, cut-short paging, fn's error, ctx cancelled)
// is returned, and the caller must then treat the read as INCOMPLETE.
// Entries without the anchor attribute are logged (warn, DN named),
// counted and not passed; the read then ends with ErrIncompleteRead, as
// it does when the server refers part of the scope elsewhere.
func (s *Source) Users(ctx context.Context, fn func(mapping.SourceUser) error) (Stats, error) {
	var st Stats
	conn, err := s.connection(ctx)
	if err != nil {
		return st, err
	}
	// The query fitted to the server (Active Directory's domain scope, so
	// a search at a domain root brings no referrals); the rootDSE read
	// that fits it is not counted.
	dse, err := s.readRootDSE(ctx, conn, &Stats{})
	if err != nil {
		return st, err
	}
	err = s.readUsers(ctx, conn, s.userQuery(dse), &st, fn)
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
//
// It reads one page ahead: as soon as page N is in (its cookie known), the
// request for page N+1 goes out, so the server and go-ldap's reader (which
// decodes every entry) work on it while page N is converted and handed to
// fn here. Never more than one page ahead: memory stays about two pages
// whatever the directory's size.
func (s *Source) readUsers(ctx context.Context, conn *ldap.Conn, q userQuery, st *Stats, fn func(mapping.SourceUser) error) error {
	startEntries, startPages, startSkipped, startRefs := st.Entries, st.Pages, st.SkippedNoAnchor, st.Referrals
	firstSkipped, firstRef := "", ""
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

	// next is the page in flight, nil when none is. While one is, req
	// and paging are its goroutine's: they change only once it is in.
	var next <-chan page
	fetch := func() {
		st.Operations++
		ch := make(chan page, 1) // the goroutine never waits for us
		go func() {
			// The whole page is read before fn sees any of it: go-ldap
			// silently drops a response its reader cannot hand over
			// within OpTimeout, so a slow fn must never sit between the
			// wire and the page.
			var p page
			p.entries, p.controls, p.refs, p.err = s.searchRefs(ctx, conn, req)
			ch <- p
		}()
		next = ch
	}
	// stop ends a read cut short (fn's error, ctx): it waits for the page
	// in flight, then releases the paged search with the cookie the
	// server now expects. The page in flight is waited for, not
	// cancelled: go-ldap cancels only its own side (no Abandon operation
	// is sent), so the server finishes that page anyway and then expects
	// its cookie; the wait is bounded by OpTimeout. When ctx ended, the
	// page is cut short and its cookie never seen; the last page received
	// is then the best guess.
	stop := func(cookie []byte) {
		if next != nil {
			if p := <-next; p.err == nil {
				cookie = p.cookie()
			}
			next = nil
		}
		if len(cookie) > 0 {
			st.Operations++
		}
		s.abandon(ctx, conn, req, paging, cookie)
	}

	fetch()
	for {
		p := <-next
		next = nil
		if p.err != nil {
			return fail(fmt.Errorf("page %d: %w", st.Pages-startPages+1, p.err))
		}
		st.Pages++
		st.Referrals += len(p.refs)
		if len(p.refs) > 0 && firstRef == "" {
			firstRef = p.refs[0]
		}
		// A server that ignores the paging control sends everything in one
		// response and no control back: that response is the whole result.
		cookie := p.cookie()
		if len(cookie) > 0 && ctx.Err() == nil {
			paging.SetCookie(cookie)
			fetch()
		}
		for i, e := range p.entries {
			p.entries[i] = nil // let the collector take entries already handed on
			st.Entries++
			u, err := s.conv.user(e)
			if err != nil {
				st.SkippedNoAnchor++
				if firstSkipped == "" {
					firstSkipped = fmt.Sprintf("%s (%v)", e.DN, err)
				}
				s.log.Warn("ldapsrc: entry skipped: no usable anchor",
					zap.String("dn", e.DN), zap.String("anchorAttribute", s.cfg.AnchorAttribute), zap.String("reason", err.Error()))
				continue
			}
			if err := ctx.Err(); err != nil {
				stop(cookie)
				return fail(err)
			}
			if err := fn(u); err != nil {
				stop(cookie)
				return fail(fmt.Errorf("stopped at %s: %w", e.DN, err))
			}
		}
		s.log.Debug("ldapsrc: page read",
			zap.String("base", q.base), zap.Int("page", st.Pages-startPages), zap.Int("pageEntries", len(p.entries)),
			zap.Int("entries", st.Entries), zap.Int("skippedNoAnchor", st.SkippedNoAnchor))
		if len(cookie) == 0 {
			return incomplete(st.SkippedNoAnchor-startSkipped, firstSkipped, st.Referrals-startRefs, firstRef, s.cfg.AnchorAttribute, fail)
		}
		if err := ctx.Err(); err != nil {
			stop(cookie)
			return fail(err)
		}
	}
}

// page is one search response of a paged read, read whole.
type page struct {
	entries  []*ldap.Entry
	controls []ldap.Control
	refs     []string
	err      error
}

// cookie is the paging cookie the server sent back with the page: empty
// on the last page, and when the server ignored the paging control.
func (p page) cookie() []byte {
	if c, ok := ldap.FindControl(p.controls, ldap.ControlTypePaging).(*ldap.ControlPaging); ok {
		return c.Cookie
	}
	return nil
}

// ErrIncompleteRead: the search ended, but did not show every user in
// scope: entries whose anchor the account cannot read, or parts of the
// scope referred to another server. Nothing may be concluded from the
// users it did not return.
var ErrIncompleteRead = errors.New("the read did not see every user in scope")

// incomplete turns what a finished search could not see into
// ErrIncompleteRead, naming the first such entry or referral.
func incomplete(skipped int, firstSkipped string, refs int, firstRef, anchor string, fail func(error) error) error {
	var why []string
	if skipped > 0 {
		why = append(why, fmt.Sprintf("%d entries show no usable %s (first: %s): the account may lack read rights on it", skipped, anchor, firstSkipped))
	}
	if refs > 0 {
		why = append(why, fmt.Sprintf("%d referrals to parts of the scope on other servers, not followed (first: %s): narrow baseDN or read that server as a source of its own", refs, firstRef))
	}
	if len(why) == 0 {
		return nil
	}
	return fail(fmt.Errorf("%w: %s", ErrIncompleteRead, strings.Join(why, "; ")))
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
	entries, controls, refs, err := s.searchRefs(ctx, conn, req)
	for _, ref := range refs {
		s.log.Debug("ldapsrc: referral not followed", zap.String("base", req.BaseDN), zap.String("referral", ref))
	}
	return entries, controls, err
}

// searchRefs is search that also returns the continuation references
// (referrals) received, for the reads that must see every user.
func (s *Source) searchRefs(ctx context.Context, conn *ldap.Conn, req *ldap.SearchRequest) ([]*ldap.Entry, []ldap.Control, []string, error) {
	var entries []*ldap.Entry
	var controls []ldap.Control
	var refs []string
	resp := conn.SearchAsync(ctx, req, 64)
	for resp.Next() {
		if e := resp.Entry(); e != nil {
			entries = append(entries, e)
		} else if ref := resp.Referral(); ref != "" {
			refs = append(refs, ref)
		}
		controls = append(controls, resp.Controls()...)
	}
	if err := resp.Err(); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			// The entries up to the limit are what a size-limited search
			// (the certificate probe) asked for; the error still says
			// the answer is not all there is.
			return entries, controls, refs, err
		}
		return nil, nil, nil, err
	}
	// SearchAsync reports a cancelled context, and a search on a connection
	// already closing, as a clean end without error: never take those for
	// a complete answer.
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	if conn.IsClosing() {
		return nil, nil, nil, errors.New("connection closed before the search completed")
	}
	return entries, controls, refs, nil
}
