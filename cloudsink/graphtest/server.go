package graphtest

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/mapping/pkitest"
)

// User is a cloud user as the emulator stores it.
type User struct {
	ID                    string
	UserPrincipalName     string
	Mail                  string
	OnPremisesImmutableID string
	// OnPremisesSyncEnabled marks a user synced by Entra Connect: the
	// emulator refuses updates to it, as Graph does.
	OnPremisesSyncEnabled bool
	CertificateUserIDs    []string
}

func (u User) clone() User {
	u.CertificateUserIDs = append([]string(nil), u.CertificateUserIDs...)
	return u
}

// Options configures Start. The zero value is usable.
type Options struct {
	// TenantID and ClientID default to fresh GUIDs.
	TenantID, ClientID string
	// ClientSecret is the app's secret; "" disables secret authentication.
	ClientSecret string
	// ClientCertificates are the certificates registered on the app: client
	// assertions must be signed by the key of one of them.
	ClientCertificates []*x509.Certificate
	// Roles are the Graph application permissions granted to the app (with
	// admin consent): the roles claim of Graph tokens. Graph answers 403
	// to reads without User.Read.All, User.ReadWrite.All or
	// Directory.(Read|ReadWrite).All, and to writes without a ReadWrite
	// one. nil: User.ReadWrite.All; empty: none.
	Roles []string
	// DirectoryRoles are the template IDs of the directory roles assigned
	// to the app's service principal: the wids claim of every token.
	// Writing certificateUserIds needs Privileged Authentication
	// Administrator (or Global Administrator). nil: Privileged
	// Authentication Administrator and Exchange Administrator; empty: none,
	// and tokens carry no wids claim.
	DirectoryRoles []string
	// Users are loaded at start; empty IDs get fresh GUIDs.
	Users []User
	// Logger gets one debug line per request (nil: none).
	Logger *zap.Logger
}

// Request is one entry of the emulator's request log: a top-level HTTP
// request, or one item of a $batch (InBatch, with the envelope's BatchID).
type Request struct {
	Method   string
	Path     string // e.g. /v1.0/users/{id}, /{tenant}/oauth2/v2.0/token
	Query    string // raw query
	Status   int
	InBatch  bool
	BatchID  string // the $batch envelope this item came in (and the envelope's own entry)
	ItemID   string // the item's id inside its $batch
	GzipBody bool   // the request body came gzip-compressed (for items: the envelope's)
	// AnswerDropped: the request was carried out but its answer was cut
	// off (DropWriteAnswers).
	AnswerDropped bool
}

// Server is a running emulator. All methods are safe for concurrent use.
type Server struct {
	tenantID, clientID, clientSecret string
	clientCerts                      []*x509.Certificate
	servicePrincipalID               string
	roles                            []string // Graph's roles claim
	signingKey                       []byte

	ca   *pkitest.CA
	url  string
	srv  *http.Server
	log  *zap.Logger
	done chan struct{}

	mu sync.Mutex // guards everything below
	// users keeps insertion order, which is the order of listings.
	users []*User
	// Indexes over users, so that a tenant of 100k users costs the same
	// per request as one of ten (the real service does not slow down
	// with size, and benchmarks must measure certsync, not the emulator).
	pos        map[string]int       // lower-cased ID → index in users
	byKey      map[string]*User     // lower-cased ID and userPrincipalName
	byMail     map[string][]*User   // lower-cased mail (not unique)
	owners     map[string]*User     // lower-cased certificateUserIds value → its holder
	deleted    map[string]*User     // soft-deleted users (deleted items), by lower-cased ID
	tokens     map[string]TokenInfo // access token -> what it was issued for
	mounts     []Mount
	skipTokens map[string]pageState
	requests   []Request
	writes     int
	batchSeq   int
	// directoryRoles is the wids claim of tokens issued from now on.
	directoryRoles []string

	throttleN          int
	throttleAfter      time.Duration
	batchThrottleN     int
	batchThrottleAfter time.Duration
	failN              int
	failStatus         int
	latency            time.Duration
	dropWriteAnswersN  int
}

// maxBody bounds request bodies (after decompression).
const maxBody = 4 << 20

// Start launches an emulator on a random loopback port.
func Start(opts Options) (*Server, error) {
	s := &Server{
		tenantID:     opts.TenantID,
		clientID:     opts.ClientID,
		clientSecret: opts.ClientSecret,
		clientCerts:  append([]*x509.Certificate(nil), opts.ClientCertificates...),
		log:          opts.Logger,
		done:         make(chan struct{}),
		pos:          make(map[string]int),
		deleted:      make(map[string]*User),
		byKey:        make(map[string]*User),
		byMail:       make(map[string][]*User),
		owners:       make(map[string]*User),
		tokens:       make(map[string]TokenInfo),
		skipTokens:   make(map[string]pageState),
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.servicePrincipalID = newGUID()
	s.signingKey = []byte(randomToken(32))
	s.roles = defaultRoles()
	if opts.Roles != nil {
		s.roles = append([]string{}, opts.Roles...)
	}
	s.directoryRoles = defaultDirectoryRoles()
	if opts.DirectoryRoles != nil {
		s.directoryRoles = append([]string{}, opts.DirectoryRoles...)
	}
	if s.tenantID == "" {
		s.tenantID = newGUID()
	}
	if s.clientID == "" {
		s.clientID = newGUID()
	}
	for _, u := range opts.Users {
		s.addUserLocked(u)
	}
	ca, err := pkitest.NewRootCA("certsync graphtest CA")
	if err != nil {
		return nil, fmt.Errorf("graphtest: test CA: %w", err)
	}
	s.ca = ca
	cert, err := ca.ServerTLS("127.0.0.1", "localhost")
	if err != nil {
		return nil, fmt.Errorf("graphtest: server certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("graphtest: listen on loopback: %w", err)
	}
	s.url = "https://" + ln.Addr().String()
	s.srv = &http.Server{
		Handler:           s,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		// Clients that distrust the test CA end their handshakes; that is
		// their test's business, not noise for every run.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("graphtest: serve", zap.Error(err))
		}
	}()
	return s, nil
}

// URL is the emulator's base, both the Graph endpoint (without /v1.0) and
// the authority host: https://127.0.0.1:PORT.
func (s *Server) URL() string { return s.url }

// CAPEM is the PEM of the CA that signed the emulator's TLS certificate.
func (s *Server) CAPEM() []byte { return pkitest.CertPEM(s.ca.Cert) }

// RootCAs is a pool trusting the emulator's TLS certificate.
func (s *Server) RootCAs() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.ca.Cert)
	return p
}

// TenantID is the tenant the token endpoint serves.
func (s *Server) TenantID() string { return s.tenantID }

// ClientID is the application (client) ID the token endpoint accepts.
func (s *Server) ClientID() string { return s.clientID }

// ClientSecret is the accepted secret ("" when secrets are refused).
func (s *Server) ClientSecret() string { return s.clientSecret }

// AddUser stores u (replacing a user with the same ID) and returns it with
// its ID filled in.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addUserLocked(u).clone()
}

func (s *Server) addUserLocked(u User) *User {
	if u.ID == "" {
		u.ID = newGUID()
	}
	nu := u.clone()
	if i, ok := s.pos[strings.ToLower(u.ID)]; ok {
		s.unindexLocked(s.users[i])
		s.users[i] = &nu
	} else {
		s.pos[strings.ToLower(u.ID)] = len(s.users)
		s.users = append(s.users, &nu)
	}
	s.indexLocked(&nu)
	return &nu
}

func (s *Server) indexLocked(u *User) {
	s.byKey[strings.ToLower(u.ID)] = u
	if u.UserPrincipalName != "" {
		s.byKey[strings.ToLower(u.UserPrincipalName)] = u
	}
	if u.Mail != "" {
		m := strings.ToLower(u.Mail)
		s.byMail[m] = append(s.byMail[m], u)
	}
	for _, v := range u.CertificateUserIDs {
		s.owners[strings.ToLower(v)] = u
	}
}

func (s *Server) unindexLocked(u *User) {
	for _, k := range []string{u.ID, u.UserPrincipalName} {
		if k != "" && s.byKey[strings.ToLower(k)] == u {
			delete(s.byKey, strings.ToLower(k))
		}
	}
	if u.Mail != "" {
		m := strings.ToLower(u.Mail)
		s.byMail[m] = slices.DeleteFunc(s.byMail[m], func(o *User) bool { return o == u })
		if len(s.byMail[m]) == 0 {
			delete(s.byMail, m)
		}
	}
	for _, v := range u.CertificateUserIDs {
		if s.owners[strings.ToLower(v)] == u {
			delete(s.owners, strings.ToLower(v))
		}
	}
}

// DeleteUser removes the user with that ID, as deleting the account in
// the tenant would; it reports whether there was one. As in Entra ID the
// account is soft-deleted: GET /users/{id} answers 404 until RestoreUser
// brings it back with its properties, certificateUserIds included
// (https://learn.microsoft.com/graph/api/resources/directory: deleted
// items stay restorable for 30 days).
func (s *Server) DeleteUser(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.pos[strings.ToLower(id)]
	if !ok {
		return false
	}
	s.deleted[strings.ToLower(id)] = s.users[i]
	s.unindexLocked(s.users[i])
	s.users = append(s.users[:i], s.users[i+1:]...)
	delete(s.pos, strings.ToLower(id))
	for j := i; j < len(s.users); j++ {
		s.pos[strings.ToLower(s.users[j].ID)] = j
	}
	return true
}

// RestoreUser brings a soft-deleted user back, as POST
// /directory/deletedItems/{id}/restore does; it reports whether there was one.
func (s *Server) RestoreUser(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.deleted[strings.ToLower(id)]
	if !ok {
		return false
	}
	delete(s.deleted, strings.ToLower(id))
	s.addUserLocked(*u)
	return true
}

// User returns a copy of the user with that ID.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.pos[strings.ToLower(id)]; ok {
		return s.users[i].clone(), true
	}
	return User{}, false
}

// Users returns copies of all users in insertion order.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, len(s.users))
	for i, u := range s.users {
		out[i] = u.clone()
	}
	return out
}

// Throttle makes the next n Graph operations (a top-level request or one
// $batch item) answer 429 with Retry-After (whole seconds, rounded up).
func (s *Server) Throttle(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleN, s.throttleAfter = n, retryAfter
}

// ThrottleBatches makes the next n $batch envelopes answer 429 with
// Retry-After as a whole, before any of their items run.
func (s *Server) ThrottleBatches(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batchThrottleN, s.batchThrottleAfter = n, retryAfter
}

// Fail makes the next n Graph operations answer status (e.g. 503) with
// Graph's error shape and no Retry-After.
func (s *Server) Fail(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = n, status
}

// DropWriteAnswers makes the next n requests that write (a PATCH, or a
// $batch holding one) take effect and then lose their answer: the stream
// is reset instead of answered, as when a connection drops after Graph
// has committed. The client cannot know whether the write landed.
func (s *Server) DropWriteAnswers(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropWriteAnswersN = n
}

// SetLatency delays every HTTP request by d before it is handled.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// ExpireTokens makes every access token issued so far expired.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := time.Now().Add(-time.Second)
	for t, info := range s.tokens {
		info.Expires = past
		s.tokens[t] = info
	}
}

// Requests returns the request log.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests empties the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Writes counts accepted (2xx) PATCH operations, top-level or in batches.
func (s *Server) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Close stops the server, cutting open connections, and waits for it. (A
// graceful shutdown would wait a second for HTTP/2 clients to go away.)
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	if err != nil {
		return fmt.Errorf("graphtest: close: %w", err)
	}
	return nil
}

func (s *Server) record(r ...Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r...)
}

// ServeHTTP routes the authority and Graph endpoints, and hands mounted
// services their paths untouched (they keep their own log and knobs).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	latency := s.latency
	var mounted http.Handler
	for _, m := range s.mounts {
		if strings.HasPrefix(r.URL.Path, m.PathPrefix) {
			mounted = m.Handler
			break
		}
	}
	s.mu.Unlock()
	if mounted != nil {
		mounted.ServeHTTP(w, r)
		return
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	gz := strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip")
	body, err := readBody(r)
	var resp response
	var items []Request
	batchID := ""
	switch {
	case err != nil:
		resp = graphError(http.StatusBadRequest, "BadRequest", err.Error(), r.Header)
		if ue := (unsupportedEncodingError{}); errors.As(err, &ue) {
			resp = graphError(http.StatusUnsupportedMediaType, "UnsupportedMediaType", err.Error(), r.Header)
		}
	case strings.HasPrefix(r.URL.Path, "/v1.0/"):
		resp, batchID, items = s.serveGraph(r, body, gz)
	default:
		resp = s.serveAuthority(r, body)
	}
	drop := s.takeDrop(r, items)
	s.record(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: resp.status, BatchID: batchID, GzipBody: gz, AnswerDropped: drop})
	s.record(items...)
	s.log.Debug("graphtest: request", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("status", resp.status), zap.Int("batchItems", len(items)), zap.Bool("answerDropped", drop))
	if drop {
		// Resets the stream (HTTP/2) or the connection (HTTP/1) without an
		// answer; net/http logs nothing for this sentinel.
		panic(http.ErrAbortHandler)
	}
	resp.write(w, r)
}

// takeDrop decides whether this request's answer is to be dropped.
func (s *Server) takeDrop(r *http.Request, items []Request) bool {
	writes := r.Method == http.MethodPatch
	for _, it := range items {
		writes = writes || it.Method == http.MethodPatch
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !writes || s.dropWriteAnswersN == 0 {
		return false
	}
	s.dropWriteAnswersN--
	return true
}

type unsupportedEncodingError struct{ enc string }

func (e unsupportedEncodingError) Error() string {
	return fmt.Sprintf("Content-Encoding %q is not supported (gzip or none)", e.enc)
}

// readBody returns the request body, gunzipped when the client compressed it.
func readBody(r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request body: %v", err)
	}
	if len(raw) > maxBody {
		return nil, fmt.Errorf("request body larger than %d bytes", maxBody)
	}
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
		return raw, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("Content-Encoding is gzip but the body is not: %v", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxBody+1))
		if err != nil {
			return nil, fmt.Errorf("Content-Encoding is gzip but the body does not decompress: %v", err)
		}
		if len(out) > maxBody {
			return nil, fmt.Errorf("decompressed body larger than %d bytes", maxBody)
		}
		return out, nil
	default:
		return nil, unsupportedEncodingError{enc: enc}
	}
}

// response is an answer not yet written: top-level, or a $batch item.
type response struct {
	status int
	header http.Header
	body   []byte
}

// write sends the response, gzipped when the client accepts it, as Graph does.
func (resp response) write(w http.ResponseWriter, r *http.Request) {
	for k, vs := range resp.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := resp.body
	if len(body) > 0 && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		// Writes to a bytes.Buffer do not fail.
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = buf.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
	}
	if len(body) > 0 {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(body)
}

func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		return q > 0
	}
	return false
}

func newGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}
