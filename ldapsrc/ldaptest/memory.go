package ldaptest

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Entry is one directory entry of a Memory server. Attribute names may
// carry options ("userCertificate;binary"); they are matched without them.
type Entry struct {
	DN         string
	Attributes map[string][][]byte
}

// MemoryOptions configures StartMemory.
type MemoryOptions struct {
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
}

// Memory is an in-process LDAP directory served over LDAPS on loopback,
// built on gldap. It answers simple binds, searches (base, one, subtree;
// filters evaluated for real; attribute selection; size limit) and the
// paged-results control (page size and cookie honoured).
type Memory struct {
	URL string // ldaps://127.0.0.1:PORT

	srv     *gldap.Server
	runErr  chan error
	tracker *connTracker
	logGate *gate
	stop    func() bool // unregisters the close-on-ctx hook
	once    sync.Once
	err     error
}

// StartMemory starts the server. It runs until Close, or until ctx ends.
func StartMemory(ctx context.Context, opts MemoryOptions) (*Memory, error) {
	if opts.TLS == nil {
		return nil, errors.New("ldaptest: StartMemory: TLS is required (the server speaks ldaps:// only)")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	logGate := &gate{}
	log := opts.Logger.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return gatedCore{c, logGate} }))
	d, err := newDirectory(opts, log)
	if err != nil {
		return nil, err
	}
	tracker := &connTracker{conns: map[net.Conn]struct{}{}}
	tlsCfg := tracker.config(opts.TLS)
	var want []byte
	if len(opts.TLS.Certificates) > 0 && len(opts.TLS.Certificates[0].Certificate) > 0 {
		want = opts.TLS.Certificates[0].Certificate[0]
	}
	for attempt := 1; ; attempt++ {
		m, err := d.serve(ctx, tlsCfg, want)
		if err == nil {
			m.tracker = tracker
			m.logGate = logGate
			m.stop = context.AfterFunc(ctx, func() { _ = m.Close() })
			log.Info("ldaptest: memory directory serving", zap.String("url", m.URL), zap.Int("entries", len(d.entries)))
			return m, nil
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			return nil, fmt.Errorf("ldaptest: start memory directory: %w", err)
		}
	}
}

// serve runs one gldap server on a free port and waits until it answers.
func (d *directory) serve(ctx context.Context, tlsCfg *tls.Config, wantLeaf []byte) (*Memory, error) {
	mux, err := gldap.NewMux()
	if err != nil {
		return nil, err
	}
	if err := mux.Bind(d.bind); err != nil {
		return nil, err
	}
	if err := mux.Search(d.search); err != nil {
		return nil, err
	}
	if err := mux.DefaultRoute(d.unsupported); err != nil {
		return nil, err
	}
	srv, err := gldap.NewServer(gldap.WithLogger(d.hclog()), gldap.WithOnClose(d.forget))
	if err != nil {
		return nil, err
	}
	if err := srv.Router(mux); err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(addr, gldap.WithTLSConfig(tlsCfg)) }()

	// Ready turns true once Run tried to listen, also when that failed; a
	// handshake presenting our certificate proves the port is ours.
	for !srv.Ready() {
		select {
		case err := <-runErr:
			return nil, fmt.Errorf("%w: %v", errPortTaken, err)
		case <-ctx.Done():
			_ = srv.Stop()
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	if perr := probeTLS(ctx, addr, wantLeaf); perr != nil {
		_ = srv.Stop()
		if rerr := <-runErr; rerr != nil {
			return nil, fmt.Errorf("%w: %v", errPortTaken, rerr)
		}
		return nil, fmt.Errorf("server on %s does not answer: %w", addr, perr)
	}
	return &Memory{URL: "ldaps://" + addr, srv: srv, runErr: runErr}, nil
}

// probeTLS completes a TLS handshake with addr and, when wantLeaf is set,
// checks the server presents exactly that certificate: a pin, stricter
// than chain verification, and independent of which CA signed it.
func probeTLS(ctx context.Context, addr string, wantLeaf []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin below
		MinVersion:         tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if wantLeaf != nil && (len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, wantLeaf)) {
				return errors.New("another server answers on this port")
			}
			return nil
		},
	}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// Close stops the server and drops open client connections.
func (m *Memory) Close() error {
	m.once.Do(func() {
		if m.stop != nil {
			m.stop()
		}
		// gldap's Stop waits for every connection to end, and an idle one
		// only ends when its socket closes: close them all while it waits.
		stopped := make(chan error, 1)
		go func() { stopped <- m.srv.Stop() }()
		m.tracker.closeAll()
		m.err = <-stopped
		if err := <-m.runErr; err != nil && m.err == nil {
			m.err = err
		}
		if m.err != nil {
			m.err = fmt.Errorf("ldaptest: stop memory directory %s: %w", m.URL, m.err)
		}
		m.logGate.shut()
	})
	return m.err
}

// gate silences the server's logger once Close returns: gldap's connection
// goroutines still log after its Stop returns, and a test logger must not
// be written to after its test ended.
type gate struct {
	mu     sync.RWMutex
	closed bool // guarded by mu
}

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}

type gatedCore struct {
	zapcore.Core
	g *gate
}

func (c gatedCore) With(fields []zapcore.Field) zapcore.Core {
	return gatedCore{c.Core.With(fields), c.g}
}

func (c gatedCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c gatedCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	c.g.mu.RLock()
	defer c.g.mu.RUnlock()
	if c.g.closed {
		return nil
	}
	return c.Core.Write(e, fields)
}

// connTracker records the raw connections of TLS clients (gldap does not
// expose them) so that Close can end them.
type connTracker struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu; grows with each connection until Close
	closed bool                  // guarded by mu
}

func (ct *connTracker) config(base *tls.Config) *tls.Config {
	cfg := base.Clone()
	next := base.GetConfigForClient
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		ct.mu.Lock()
		closed := ct.closed
		if !closed {
			ct.conns[hello.Conn] = struct{}{}
		}
		ct.mu.Unlock()
		if closed {
			return nil, errors.New("ldaptest: memory directory is closing")
		}
		if next != nil {
			return next(hello)
		}
		return nil, nil
	}
	return cfg
}

func (ct *connTracker) closeAll() {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	ct.closed = true
	for c := range ct.conns {
		_ = c.Close()
	}
	ct.conns = nil
}

// directory is the data and the request handlers of a Memory server.
type directory struct {
	bindDN       *ldap.DN
	bindPassword string
	entries      []memEntry // read-only after newDirectory
	noPaging     bool
	hideRootDSE  bool
	log          *zap.Logger

	mu    sync.Mutex
	bound map[int]bool // connection ID → bound; guarded by mu
}

type memEntry struct {
	dn     string
	parsed *ldap.DN
	attrs  []entryAttr // sorted by name
}

// operational attributes are returned only when asked for by name or "+".
func isOperational(name string) bool { return strings.EqualFold(name, "entryUUID") }

func isObjectClass(name string) bool { return strings.EqualFold(name, "objectClass") }

// values returns the values of every attribute named name, options aside.
func (e *memEntry) values(name string) [][]byte {
	var out [][]byte
	for _, a := range e.attrs {
		if strings.EqualFold(baseName(a.name), name) {
			out = append(out, a.values...)
		}
	}
	return out
}

func baseName(attr string) string {
	name, _, _ := strings.Cut(attr, ";")
	return name
}

func newDirectory(opts MemoryOptions, log *zap.Logger) (*directory, error) {
	d := &directory{bindPassword: opts.BindPassword, noPaging: opts.NoPaging, hideRootDSE: opts.HideRootDSE, log: log, bound: map[int]bool{}}
	if opts.BindDN == "" || opts.BindPassword == "" {
		return nil, errors.New("ldaptest: StartMemory: BindDN and BindPassword are required")
	}
	var err error
	if d.bindDN, err = ldap.ParseDN(opts.BindDN); err != nil {
		return nil, fmt.Errorf("ldaptest: StartMemory: bind DN %q: %w", opts.BindDN, err)
	}
	seen := map[string]bool{}
	for _, e := range opts.Entries {
		parsed, err := ldap.ParseDN(e.DN)
		if err != nil {
			return nil, fmt.Errorf("ldaptest: StartMemory: entry DN %q: %w", e.DN, err)
		}
		key := strings.ToLower(parsed.String())
		if seen[key] {
			return nil, fmt.Errorf("ldaptest: StartMemory: entry %q appears twice", e.DN)
		}
		seen[key] = true
		me := memEntry{dn: e.DN, parsed: parsed}
		for name, vals := range e.Attributes {
			me.attrs = append(me.attrs, entryAttr{name: name, values: vals})
		}
		if len(me.values("entryUUID")) == 0 {
			me.attrs = append(me.attrs, entryAttr{name: "entryUUID", values: [][]byte{[]byte(dnUUID(key))}})
		}
		sort.Slice(me.attrs, func(i, j int) bool { return me.attrs[i].name < me.attrs[j].name })
		d.entries = append(d.entries, me)
	}
	return d, nil
}

// dnUUID derives a stable name-based (version 5 layout) UUID from a DN.
func dnUUID(dn string) string {
	h := sha1.Sum([]byte(dn))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// hclog routes gldap's own messages into the zap logger at debug level:
// they are mostly client disconnects.
func (d *directory) hclog() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "gldap",
		Level:       hclog.Warn,
		Output:      zapWriter{d.log},
		DisableTime: true,
	})
}

type zapWriter struct{ log *zap.Logger }

func (w zapWriter) Write(p []byte) (int, error) {
	w.log.Debug("ldaptest: gldap", zap.String("message", strings.TrimSpace(string(p))))
	return len(p), nil
}

func (d *directory) forget(connID int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.bound, connID)
}

func (d *directory) isBound(connID int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bound[connID]
}

func (d *directory) bind(w *gldap.ResponseWriter, r *gldap.Request) {
	resp := r.NewBindResponse(gldap.WithResponseCode(gldap.ResultInvalidCredentials))
	defer func() { _ = w.Write(resp) }()
	m, err := r.GetSimpleBindMessage()
	if err != nil {
		resp.SetResultCode(gldap.ResultAuthMethodNotSupported)
		resp.SetDiagnosticMessage("only simple binds are supported")
		return
	}
	ok := false
	if dn, err := ldap.ParseDN(m.UserName); err == nil && m.Password != "" {
		ok = d.bindDN.EqualFold(dn) && string(m.Password) == d.bindPassword
	}
	// A failed bind leaves the connection anonymous, as RFC 4511 says.
	d.mu.Lock()
	d.bound[r.ConnectionID()] = ok
	d.mu.Unlock()
	if !ok {
		resp.SetDiagnosticMessage("invalid credentials")
		d.log.Debug("ldaptest: bind refused", zap.String("dn", m.UserName))
		return
	}
	resp.SetResultCode(gldap.ResultSuccess)
}

func (d *directory) unsupported(w *gldap.ResponseWriter, r *gldap.Request) {
	resp := r.NewResponse(gldap.WithResponseCode(gldap.ResultUnwillingToPerform),
		gldap.WithDiagnosticMessage("operation not supported by ldaptest.Memory"))
	_ = w.Write(resp)
}

func (d *directory) search(w *gldap.ResponseWriter, r *gldap.Request) {
	done := r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultSuccess))
	fail := func(code int, msg string) {
		done.SetResultCode(code)
		done.SetDiagnosticMessage(msg)
		_ = w.Write(done)
	}
	m, err := r.GetSearchMessage()
	if err != nil {
		fail(gldap.ResultProtocolError, err.Error())
		return
	}
	if !d.isBound(r.ConnectionID()) {
		fail(gldap.ResultInsufficientAccessRights, "bind first")
		return
	}
	matches, code, err := d.find(m)
	if err != nil {
		fail(code, err.Error())
		return
	}

	var paging *gldap.ControlPaging
	for _, c := range m.Controls {
		if p, ok := c.(*gldap.ControlPaging); ok && !d.noPaging {
			paging = p
		}
	}
	var next []byte
	switch {
	case paging != nil:
		from := 0
		if len(paging.Cookie) > 0 {
			if from, err = strconv.Atoi(string(paging.Cookie)); err != nil || from < 0 || from > len(matches) {
				fail(gldap.ResultUnwillingToPerform, "paged results cookie is invalid")
				return
			}
		}
		to := len(matches)
		if paging.PagingSize == 0 { // abandon the paged search
			to = from
		} else if n := from + int(paging.PagingSize); n < to {
			to = n
			next = []byte(strconv.Itoa(to))
		}
		matches = matches[from:to]
		done.SetControls(&gldap.ControlPaging{Cookie: next})
	case m.SizeLimit > 0 && int64(len(matches)) > m.SizeLimit:
		matches = matches[:m.SizeLimit]
		done.SetResultCode(gldap.ResultSizeLimitExceeded)
	}
	for _, e := range matches {
		if err := w.Write(d.entryResponse(r, m, e)); err != nil {
			return // the client went away
		}
	}
	_ = w.Write(done)
}

// find returns the entries in the search's scope that match its filter,
// or an LDAP result code with the error.
func (d *directory) find(m *gldap.SearchMessage) ([]*memEntry, int, error) {
	base, err := ldap.ParseDN(m.BaseDN)
	if err != nil {
		return nil, gldap.ResultInvalidDNSyntax, fmt.Errorf("invalid base DN %q", m.BaseDN)
	}
	filter, err := ldap.CompileFilter(m.Filter)
	if err != nil {
		return nil, gldap.ResultProtocolError, fmt.Errorf("filter %s: %v", m.Filter, err)
	}
	// Every LDAP server answers a base search of "" with its rootDSE.
	if len(base.RDNs) == 0 && m.Scope == gldap.BaseObject {
		if d.hideRootDSE {
			return nil, gldap.ResultSuccess, nil
		}
		return []*memEntry{d.rootDSE()}, gldap.ResultSuccess, nil
	}
	var out []*memEntry
	baseExists := false
	for i := range d.entries {
		e := &d.entries[i]
		isBase := base.EqualFold(e.parsed)
		under := base.AncestorOfFold(e.parsed)
		baseExists = baseExists || isBase || under
		var inScope bool
		switch m.Scope {
		case gldap.BaseObject:
			inScope = isBase
		case gldap.SingleLevel:
			inScope = under && len(e.parsed.RDNs) == len(base.RDNs)+1
		case gldap.WholeSubtree:
			inScope = isBase || under
		default:
			return nil, gldap.ResultProtocolError, fmt.Errorf("unknown scope %d", m.Scope)
		}
		if !inScope {
			continue
		}
		ok, err := matchFilter(filter, e)
		if err != nil {
			return nil, gldap.ResultUnwillingToPerform, err
		}
		if ok {
			out = append(out, e)
		}
	}
	if !baseExists {
		return nil, gldap.ResultNoSuchObject, fmt.Errorf("no such object: %s", m.BaseDN)
	}
	return out, gldap.ResultSuccess, nil
}

// rootDSE describes the server as a minimal LDAPv3 server does: no
// change tracking, paging unless turned off.
func (d *directory) rootDSE() *memEntry {
	e := &memEntry{parsed: &ldap.DN{}}
	add := func(name string, values ...string) {
		a := entryAttr{name: name}
		for _, v := range values {
			a.values = append(a.values, []byte(v))
		}
		e.attrs = append(e.attrs, a)
	}
	add("objectClass", "top")
	if !d.noPaging {
		add("supportedControl", ldap.ControlTypePaging)
	}
	add("supportedLDAPVersion", "3")
	return e
}

// entryResponse renders e with the attributes the search asked for: all
// user attributes for none or "*", operational ones for "+" or by name,
// none for "1.1" alone.
func (d *directory) entryResponse(r *gldap.Request, m *gldap.SearchMessage, e *memEntry) *gldap.SearchResponseEntry {
	all, ops := len(m.Attributes) == 0, false
	for _, a := range m.Attributes {
		all = all || a == "*"
		ops = ops || a == "+"
	}
	resp := r.NewSearchResponseEntry(e.dn)
	for _, a := range e.attrs {
		name := baseName(a.name)
		want := (all && !isOperational(name)) || (ops && isOperational(name))
		for _, req := range m.Attributes {
			want = want || strings.EqualFold(baseName(req), name)
		}
		if !want {
			continue
		}
		vals := make([]string, 0, len(a.values))
		if !m.TypesOnly {
			for _, v := range a.values {
				vals = append(vals, string(v))
			}
		}
		resp.AddAttribute(a.name, vals)
	}
	return resp
}
