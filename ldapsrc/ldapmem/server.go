package ldapmem

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
)

// Options configures Start.
type Options struct {
	// TLS is required: the server speaks LDAPS only.
	TLS *tls.Config
	// BindDN and BindPassword are the one account that may bind; searches
	// need a bound connection.
	BindDN, BindPassword string
	// Entries are the directory. An entry without entryUUID gets one
	// derived from its DN, as OpenLDAP gives every entry one.
	Entries []Entry
	Logger  *zap.Logger // nil: no logging
	// NoPaging makes the server ignore the paged-results control and send
	// every entry in one response without a paging control, as servers
	// without RFC 2696 support do.
	NoPaging bool
	// HideRootDSE answers the rootDSE search with no entry, as servers do
	// that hide it from some accounts.
	HideRootDSE bool
	// Searching, when set, is called with each search request's
	// paged-results control (nil when it carries none) before the request
	// is answered; the connection waits while it runs. Tests use it to see
	// which pages a client asks for and when, or to hold a page back.
	Searching func(paging *ldap.ControlPaging)
}

// maxMessage bounds one client message: the demo's clients send small
// requests, and a length prefix must not make the server allocate more.
const maxMessage = 1 << 20

// Server is a running directory.
type Server struct {
	URL string // ldaps://127.0.0.1:PORT

	ln        net.Listener
	dir       *directory
	searching func(*ldap.ControlPaging) // Options.Searching
	log       *zap.Logger
	stop      func() bool // unregisters the close-on-ctx hook
	wg        sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open client connections; guarded by mu
	closed bool                  // guarded by mu

	once sync.Once
	err  error
}

// Start listens on a free loopback port and serves until Close, or until
// ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.TLS == nil {
		return nil, errors.New("ldapmem: start: TLS is required (the server speaks ldaps:// only)")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	d, err := newDirectory(opts)
	if err != nil {
		return nil, fmt.Errorf("ldapmem: start: %w", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", opts.TLS.Clone())
	if err != nil {
		return nil, fmt.Errorf("ldapmem: start: %w", err)
	}
	s := &Server{URL: "ldaps://" + ln.Addr().String(), ln: ln, dir: d, searching: opts.Searching, log: opts.Logger, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	s.stop = context.AfterFunc(ctx, func() { _ = s.Close() })
	s.log.Info("ldapmem: directory serving", zap.String("url", s.URL), zap.Int("entries", len(d.entries)))
	return s, nil
}

// Close stops listening, drops open client connections and waits for
// their handlers to end.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.stop()
		s.err = s.ln.Close()
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		if s.err != nil {
			s.err = fmt.Errorf("ldapmem: stop %s: %w", s.URL, s.err)
		}
	})
	return s.err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// serve answers one connection's requests in order until it unbinds,
// sends something that is not LDAP, or goes away.
func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	sess := &session{dir: s.dir, searching: s.searching}
	for {
		p, err := readMessage(c)
		if err != nil {
			s.log.Debug("ldapmem: connection ends", zap.Stringer("client", c.RemoteAddr()), zap.Error(err))
			return
		}
		out, end := sess.handle(p)
		for _, m := range out {
			if _, err := c.Write(m.Bytes()); err != nil {
				return
			}
		}
		if end {
			return
		}
	}
}

// readMessage reads one LDAPMessage: a SEQUENCE with a definite length
// of at most maxMessage bytes. The header is read here rather than by
// ber.ReadPacket, whose only bound is a package variable the client side
// of the same process shares.
func readMessage(r io.Reader) (*ber.Packet, error) {
	var hdr [6]byte
	if _, err := io.ReadFull(r, hdr[:2]); err != nil {
		return nil, err
	}
	if hdr[0] != 0x30 {
		return nil, fmt.Errorf("message starts with 0x%02x, not a SEQUENCE", hdr[0])
	}
	n, size := 0, int(hdr[1])
	if size&0x80 != 0 {
		n = size & 0x7f
		if n == 0 || n > 4 {
			return nil, fmt.Errorf("message length of %d bytes is not supported", n)
		}
		if _, err := io.ReadFull(r, hdr[2:2+n]); err != nil {
			return nil, err
		}
		size = 0
		for _, b := range hdr[2 : 2+n] {
			size = size<<8 | int(b)
		}
	}
	if size > maxMessage {
		return nil, fmt.Errorf("message of %d bytes is over the limit of %d", size, maxMessage)
	}
	buf := make([]byte, 2+n+size)
	copy(buf, hdr[:2+n])
	if _, err := io.ReadFull(r, buf[2+n:]); err != nil {
		return nil, err
	}
	return ber.DecodePacketErr(buf)
}

// session is one connection's protocol state.
type session struct {
	dir       *directory
	searching func(*ldap.ControlPaging) // Options.Searching; nil: none
	bound     bool
}

// handle answers one LDAPMessage (RFC 4511 §4.1.1); end says the
// connection must close (unbind, or a message that is not LDAP).
func (s *session) handle(p *ber.Packet) (out []*ber.Packet, end bool) {
	if p.ClassType != ber.ClassUniversal || p.Tag != ber.TagSequence || len(p.Children) < 2 || len(p.Children) > 3 {
		return []*ber.Packet{disconnection("malformed LDAPMessage")}, true
	}
	id, ok := p.Children[0].Value.(int64)
	if !ok || id < 0 {
		return []*ber.Packet{disconnection("malformed messageID")}, true
	}
	op := p.Children[1]
	if op.ClassType != ber.ClassApplication {
		return []*ber.Packet{disconnection("malformed protocolOp")}, true
	}
	var paging *ldap.ControlPaging
	if len(p.Children) == 3 {
		for _, cp := range p.Children[2].Children {
			ctrl, err := ldap.DecodeControl(cp)
			if err != nil {
				return []*ber.Packet{message(id, result(responseTag(op.Tag), ldap.LDAPResultProtocolError, err.Error()))}, false
			}
			if c, ok := ctrl.(*ldap.ControlPaging); ok {
				paging = c
			} else if critical(cp) {
				return []*ber.Packet{message(id, result(responseTag(op.Tag), ldap.LDAPResultUnavailableCriticalExtension,
					"critical control "+ctrl.GetControlType()+" is not supported"))}, false
			}
		}
	}
	switch op.Tag {
	case ldap.ApplicationBindRequest:
		return []*ber.Packet{message(id, s.bind(op))}, false
	case ldap.ApplicationUnbindRequest:
		return nil, true
	case ldap.ApplicationAbandonRequest:
		return nil, false // requests are answered in order: nothing is running
	case ldap.ApplicationSearchRequest:
		if s.searching != nil {
			s.searching(paging)
		}
		return s.search(id, op, paging), false
	}
	if tag := responseTag(op.Tag); tag != noResponse {
		return []*ber.Packet{message(id, result(tag, ldap.LDAPResultUnwillingToPerform, "operation not supported by ldapmem"))}, false
	}
	return []*ber.Packet{disconnection("unknown operation " + strconv.Itoa(int(op.Tag)))}, true
}

// critical reports a Control's criticality (RFC 4511 §4.1.11), read from
// the packet: go-ldap's decoded controls do not all expose it.
func critical(cp *ber.Packet) bool {
	if len(cp.Children) < 2 {
		return false
	}
	b, _ := cp.Children[1].Value.(bool)
	return b
}

// responseTag is the response to a request operation, noResponse for none.
func responseTag(req ber.Tag) ber.Tag {
	switch req {
	case ldap.ApplicationBindRequest, ldap.ApplicationSearchRequest, ldap.ApplicationModifyRequest,
		ldap.ApplicationAddRequest, ldap.ApplicationDelRequest, ldap.ApplicationModifyDNRequest,
		ldap.ApplicationCompareRequest:
		if req == ldap.ApplicationSearchRequest {
			return ldap.ApplicationSearchResultDone
		}
		return req + 1
	case ldap.ApplicationExtendedRequest:
		return ldap.ApplicationExtendedResponse
	}
	return noResponse
}

const noResponse ber.Tag = 0xff

func (s *session) bind(op *ber.Packet) *ber.Packet {
	if len(op.Children) != 3 {
		return result(ldap.ApplicationBindResponse, ldap.LDAPResultProtocolError, "malformed bind request")
	}
	name, _ := op.Children[1].Value.(string)
	auth := op.Children[2]
	// A bind of any kind first makes the connection anonymous (RFC 4511 §4.2.1).
	s.bound = false
	if version, _ := op.Children[0].Value.(int64); version != 3 {
		return result(ldap.ApplicationBindResponse, ldap.LDAPResultProtocolError, "only LDAPv3 is supported")
	}
	if auth.ClassType != ber.ClassContext || auth.Tag != 0 {
		return result(ldap.ApplicationBindResponse, ldap.LDAPResultAuthMethodNotSupported, "only simple binds are supported")
	}
	if !s.dir.checkBind(name, auth.Data.Bytes()) {
		return result(ldap.ApplicationBindResponse, ldap.LDAPResultInvalidCredentials, "invalid credentials")
	}
	s.bound = true
	return result(ldap.ApplicationBindResponse, ldap.LDAPResultSuccess, "")
}

// searchRequest is RFC 4511 §4.5.1's SearchRequest.
type searchRequest struct {
	base      string
	scope     int64
	sizeLimit int64
	typesOnly bool
	filter    string
	attrs     []string
}

func parseSearch(op *ber.Packet) (searchRequest, error) {
	var r searchRequest
	if len(op.Children) != 8 {
		return r, errors.New("malformed search request")
	}
	c := op.Children
	var ok [5]bool
	r.base, ok[0] = c[0].Value.(string)
	r.scope, ok[1] = c[1].Value.(int64)
	r.sizeLimit, ok[2] = c[3].Value.(int64)
	r.typesOnly, ok[3] = c[5].Value.(bool)
	_, ok[4] = c[4].Value.(int64)
	for _, good := range ok {
		if !good {
			return r, errors.New("malformed search request")
		}
	}
	var err error
	if r.filter, err = ldap.DecompileFilter(c[6]); err != nil {
		return r, fmt.Errorf("filter: %w", err)
	}
	for _, a := range c[7].Children {
		name, ok := a.Value.(string)
		if !ok {
			return r, errors.New("malformed attribute list")
		}
		r.attrs = append(r.attrs, name)
	}
	return r, nil
}

func (s *session) search(id int64, op *ber.Packet, paging *ldap.ControlPaging) []*ber.Packet {
	done := func(code uint16, msg string, controls ...*ber.Packet) *ber.Packet {
		return message(id, result(ldap.ApplicationSearchResultDone, code, msg), controls...)
	}
	req, err := parseSearch(op)
	if err != nil {
		return []*ber.Packet{done(ldap.LDAPResultProtocolError, err.Error())}
	}
	if !s.bound {
		return []*ber.Packet{done(ldap.LDAPResultInsufficientAccessRights, "bind first")}
	}
	matches, rerr := s.dir.find(req.base, req.scope, req.filter)
	if rerr != nil {
		return []*ber.Packet{done(rerr.code, rerr.msg)}
	}
	code := uint16(ldap.LDAPResultSuccess)
	var controls []*ber.Packet
	switch {
	case paging != nil && !s.dir.noPaging:
		from := 0
		if len(paging.Cookie) > 0 {
			if from, err = strconv.Atoi(string(paging.Cookie)); err != nil || from < 0 || from > len(matches) {
				return []*ber.Packet{done(ldap.LDAPResultUnwillingToPerform, "paged results cookie is invalid")}
			}
		}
		to := len(matches)
		var next []byte
		if paging.PagingSize == 0 { // abandon the paged search
			to = from
		} else if n := from + int(paging.PagingSize); n < to {
			to = n
			next = []byte(strconv.Itoa(to))
		}
		matches = matches[from:to]
		resp := ldap.NewControlPaging(0)
		resp.SetCookie(next)
		controls = append(controls, resp.Encode())
	case req.sizeLimit > 0 && int64(len(matches)) > req.sizeLimit:
		matches = matches[:req.sizeLimit]
		code = ldap.LDAPResultSizeLimitExceeded
	}
	out := make([]*ber.Packet, 0, len(matches)+1)
	for _, e := range matches {
		out = append(out, message(id, entryPacket(req, e)))
	}
	return append(out, done(code, "", controls...))
}

// entryPacket renders e with the attributes the search asked for: all
// user attributes for none or "*", operational ones for "+" or by name,
// none for "1.1" alone.
func entryPacket(req searchRequest, e *memEntry) *ber.Packet {
	all, ops := len(req.attrs) == 0, false
	for _, a := range req.attrs {
		all = all || a == "*"
		ops = ops || a == "+"
	}
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "SearchResultEntry")
	p.AppendChild(octets(e.dn))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
	for _, a := range e.attrs {
		name := baseName(a.name)
		want := (all && !isOperational(name)) || (ops && isOperational(name))
		for _, r := range req.attrs {
			want = want || strings.EqualFold(baseName(r), name)
		}
		if !want {
			continue
		}
		attr := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attribute")
		attr.AppendChild(octets(a.name))
		vals := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
		if !req.typesOnly {
			for _, v := range a.values {
				vals.AppendChild(octets(string(v)))
			}
		}
		attr.AppendChild(vals)
		list.AppendChild(attr)
	}
	p.AppendChild(list)
	return p
}

func octets(s string) *ber.Packet {
	return ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, s, "")
}

// result is an LDAPResult (RFC 4511 §4.1.9) under the given operation tag.
func result(tag ber.Tag, code uint16, msg string) *ber.Packet {
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "LDAPResult")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), "resultCode"))
	p.AppendChild(octets(""))
	p.AppendChild(octets(msg))
	return p
}

func message(id int64, op *ber.Packet, controls ...*ber.Packet) *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "messageID"))
	p.AppendChild(op)
	if len(controls) > 0 {
		c := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "controls")
		for _, ctrl := range controls {
			c.AppendChild(ctrl)
		}
		p.AppendChild(c)
	}
	return p
}

// disconnection is the Notice of Disconnection (RFC 4511 §4.4.1) a
// server sends before closing on a protocol error.
func disconnection(msg string) *ber.Packet {
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedResponse, nil, "ExtendedResponse")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(ldap.LDAPResultProtocolError), "resultCode"))
	p.AppendChild(octets(""))
	p.AppendChild(octets(msg))
	p.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, "1.3.6.1.4.1.1466.20036", "responseName"))
	return message(0, p)
}
