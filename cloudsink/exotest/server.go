package exotest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/cloudsink/graphtest"
)

// Resources are the token resources Exchange Online answers to, one per
// national cloud. A client pointed at the emulator keeps its environment's
// resource, as it does for Graph.
func Resources() []string {
	return []string{
		"https://outlook.office365.com",
		"https://outlook.office365.us",
		"https://webmail.apps.mil",
		"https://partner.outlook.cn",
	}
}

// MaxValues is the most values the emulator takes per certificate
// attribute (Entra Connect's limit, which certsync keeps for Exchange).
const MaxValues = 15

// Mailbox is a mailbox as the emulator stores it.
type Mailbox struct {
	// Identity is the mailbox's name (Exchange's Name and Alias); default:
	// the part of UserPrincipalName before the @.
	Identity          string
	UserPrincipalName string
	// PrimarySmtpAddress defaults to UserPrincipalName.
	PrimarySmtpAddress string
	// ExternalDirectoryObjectID is the Entra user's object ID; default: a
	// fresh GUID.
	ExternalDirectoryObjectID string
	// MailUser makes this a mail user (RecipientTypeDetails MailUser: a
	// recipient with an external address and no mailbox here), read by
	// Get-MailUser and written by Set-MailUser, not the *-Mailbox cmdlets.
	MailUser bool
	// EmailAddresses are further SMTP addresses (proxy addresses) the
	// recipient is found by, besides PrimarySmtpAddress.
	EmailAddresses []string
	// IsDirSynced marks a mailbox Entra Connect syncs from on-premises:
	// Set-Mailbox refuses to change its certificates.
	IsDirSynced bool
	// UserCertificate and UserSMimeCertificate hold DER certificates.
	UserCertificate      [][]byte
	UserSMimeCertificate [][]byte
}

func (m Mailbox) clone() Mailbox {
	m.EmailAddresses = append([]string(nil), m.EmailAddresses...)
	m.UserCertificate = cloneValues(m.UserCertificate)
	m.UserSMimeCertificate = cloneValues(m.UserSMimeCertificate)
	return m
}

func cloneValues(vs [][]byte) [][]byte {
	if vs == nil {
		return nil
	}
	out := make([][]byte, len(vs))
	for i, v := range vs {
		out[i] = append([]byte(nil), v...)
	}
	return out
}

// Options configures Mount. The zero value is usable.
type Options struct {
	// TenantDomain is the tenant's initial domain, accepted in the path
	// beside the tenant ID (default "emulated.onmicrosoft.com").
	TenantDomain string
	// Mailboxes are loaded at start.
	Mailboxes []Mailbox
	// Roles are the Office 365 Exchange Online application permissions
	// granted to the app: the roles claim of Exchange tokens. Without
	// Exchange.ManageAsApp, InvokeCommand answers 401. nil:
	// Exchange.ManageAsApp; empty: none.
	Roles []string
	// Logger gets one debug line per request (nil: none).
	Logger *zap.Logger
}

// Request is one entry of the request log.
type Request struct {
	Method string
	Path   string
	Query  string // raw query ($select, $skiptoken)
	Status int
	// Cmdlet and Identity come from the body, when it was readable.
	Cmdlet   string
	Identity string
	// Parameters names the cmdlet parameters sent, sorted.
	Parameters []string
	Anchor     string // X-AnchorMailbox
	Host       string // the Host the request was sent to
	// Authorized: the request carried a bearer token.
	Authorized bool
	// ErrorType is the Exchange exception type of a refused cmdlet, e.g.
	// Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException.
	ErrorType string
	// AnswerDropped: the request was carried out but its answer was cut
	// off (DropWriteAnswers).
	AnswerDropped bool
}

// Server is the Exchange emulator mounted on a graphtest server. All
// methods are safe for concurrent use.
type Server struct {
	g            *graphtest.Server
	tenantDomain string
	log          *zap.Logger

	mu        sync.Mutex // guards everything below
	mailboxes []*Mailbox // insertion order: the order of listings
	byKey     map[string][]*Mailbox
	pages     map[string]pageState
	requests  []Request
	writes    int
	// smimeStore is Get-SmimeConfig's SMIMECertificateIssuingCA.
	smimeStore []byte

	throttleN     int
	throttleAfter time.Duration
	failN         int
	failStatus    int
	latency       time.Duration
	dropWritesN   int
	textN         int
	textStatus    int
	redirectN     int
	redirectTo    string
	rateLimitN    int
	rateReset     time.Duration
	pausedUntil   time.Time
	early         int
	// expireAfter > 0: the tokens issued so far expire when that many
	// more requests have been served.
	expireAfter int
}

// pageState is what a $skiptoken stands for.
type pageState struct {
	offset int
	key    string // the listing's cmdlet and parameters, which must not change
}

// PermissionManageAsApp is the application permission of Office 365
// Exchange Online that app-only admin API calls need.
const PermissionManageAsApp = "Exchange.ManageAsApp"

// PathPrefix is where the emulator mounts.
const PathPrefix = "/adminapi/"

// Mount adds the Exchange emulator to g, under /adminapi/, with tokens for
// Resources().
func Mount(g *graphtest.Server, opts Options) (*Server, error) {
	s := &Server{
		g:            g,
		tenantDomain: opts.TenantDomain,
		log:          opts.Logger,
		byKey:        map[string][]*Mailbox{},
		pages:        map[string]pageState{},
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.tenantDomain == "" {
		s.tenantDomain = "emulated.onmicrosoft.com"
	}
	for _, m := range opts.Mailboxes {
		s.putLocked(m)
	}
	s.reindexLocked()
	roles := []string{PermissionManageAsApp}
	if opts.Roles != nil {
		roles = opts.Roles
	}
	if err := g.Mount(graphtest.Mount{PathPrefix: PathPrefix, Resources: Resources(), Roles: roles, Handler: s}); err != nil {
		return nil, fmt.Errorf("exotest: %w", err)
	}
	return s, nil
}

// URL is the Exchange endpoint to configure (the graphtest server's base).
func (s *Server) URL() string { return s.g.URL() }

// TenantID is the tenant the path must name (or TenantDomain).
func (s *Server) TenantID() string { return s.g.TenantID() }

// TenantDomain is the tenant's initial domain, also accepted in the path.
func (s *Server) TenantDomain() string { return s.tenantDomain }

// AddMailbox stores m (replacing the mailbox with the same
// ExternalDirectoryObjectID) and returns it with its defaults filled in.
func (s *Server) AddMailbox(m Mailbox) Mailbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(m).clone()
}

func (s *Server) addLocked(m Mailbox) *Mailbox {
	nm := s.putLocked(m)
	s.reindexLocked()
	return nm
}

// putLocked stores m with its defaults, without reindexing: loading many
// mailboxes reindexes once.
func (s *Server) putLocked(m Mailbox) *Mailbox {
	if m.ExternalDirectoryObjectID == "" {
		m.ExternalDirectoryObjectID = newGUID()
	}
	if m.Identity == "" {
		m.Identity, _, _ = strings.Cut(m.UserPrincipalName, "@")
	}
	if m.PrimarySmtpAddress == "" {
		m.PrimarySmtpAddress = m.UserPrincipalName
	}
	nm := m.clone()
	replaced := false
	for i, o := range s.mailboxes {
		if strings.EqualFold(o.ExternalDirectoryObjectID, m.ExternalDirectoryObjectID) {
			s.mailboxes[i] = &nm
			replaced = true
			break
		}
	}
	if !replaced {
		s.mailboxes = append(s.mailboxes, &nm)
	}
	return &nm
}

func (s *Server) reindexLocked() {
	s.byKey = make(map[string][]*Mailbox, 4*len(s.mailboxes))
	for _, m := range s.mailboxes {
		seen := map[string]bool{}
		for _, k := range append([]string{m.Identity, m.UserPrincipalName, m.PrimarySmtpAddress, m.ExternalDirectoryObjectID}, m.EmailAddresses...) {
			k = strings.ToLower(k)
			if k != "" && !seen[k] {
				seen[k] = true
				s.byKey[k] = append(s.byKey[k], m)
			}
		}
	}
}

// DeleteMailbox removes the mailbox with that ExternalDirectoryObjectID;
// it reports whether there was one.
func (s *Server) DeleteMailbox(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.mailboxes {
		if strings.EqualFold(m.ExternalDirectoryObjectID, id) {
			s.mailboxes = append(s.mailboxes[:i], s.mailboxes[i+1:]...)
			s.reindexLocked()
			return true
		}
	}
	return false
}

// Mailbox returns a copy of the mailbox with that ExternalDirectoryObjectID.
func (s *Server) Mailbox(id string) (Mailbox, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.mailboxes {
		if strings.EqualFold(m.ExternalDirectoryObjectID, id) {
			return m.clone(), true
		}
	}
	return Mailbox{}, false
}

// Mailboxes returns copies of all mailboxes in insertion order.
func (s *Server) Mailboxes() []Mailbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Mailbox, len(s.mailboxes))
	for i, m := range s.mailboxes {
		out[i] = m.clone()
	}
	return out
}

// Throttle makes the next n InvokeCommand requests answer 429 with
// Retry-After (whole seconds, rounded up).
func (s *Server) Throttle(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleN, s.throttleAfter = n, retryAfter
}

// Fail makes the next n InvokeCommand requests answer status (e.g. 503)
// with no Retry-After.
func (s *Server) Fail(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = n, status
}

// DropWriteAnswers makes the next n Set-Mailbox requests take effect and
// then lose their answer (the stream is reset), as when a connection
// drops after Exchange has committed.
func (s *Server) DropWriteAnswers(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropWritesN = n
}

// SetLatency delays every request by d before it is handled.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
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

// Writes counts accepted Set-Mailbox calls.
func (s *Server) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// ExpireTokensAfter makes every token issued so far expire once n more
// requests have been served: a token that runs out in the middle of a
// pass. The next request with one gets Exchange's 401 (invalid_token).
func (s *Server) ExpireTokensAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireAfter = n + 1
}

func (s *Server) takeExpiry() {
	s.mu.Lock()
	expire := false
	if s.expireAfter > 0 {
		s.expireAfter--
		expire = s.expireAfter == 0
	}
	s.mu.Unlock()
	if expire {
		s.g.ExpireTokens()
	}
}

// ServeHTTP answers /adminapi/...
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Anchor: r.Header.Get("X-AnchorMailbox"),
		Host: r.Host, Authorized: strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ")}
	s.takeExpiry()
	resp, redirected := s.takeRedirect(r)
	if !redirected {
		resp = s.serve(r, &rec)
	}
	s.rateLimitHeaders(&resp)
	rec.Status = resp.status
	rec.ErrorType = resp.exType
	drop := resp.isWrite && resp.status == http.StatusOK && s.takeDrop()
	rec.AnswerDropped = drop
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	s.log.Debug("exotest: request", zap.String("path", r.URL.Path), zap.String("cmdlet", rec.Cmdlet),
		zap.String("identity", rec.Identity), zap.Int("status", resp.status), zap.Bool("answerDropped", drop))
	if drop {
		panic(http.ErrAbortHandler)
	}
	resp.write(w, r)
}

func (s *Server) takeDrop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropWritesN == 0 {
		return false
	}
	s.dropWritesN--
	return true
}

// FailText makes the next n InvokeCommand requests answer status with
// Exchange's plain-text answer to a tenant over its concurrent requests.
func (s *Server) FailText(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.textN, s.textStatus = n, status
}

// Redirect makes the next n requests answer 302 to the same path and
// query on base (e.g. another name of this server), as Exchange sends a
// client to another regional host.
func (s *Server) Redirect(n int, base string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redirectN, s.redirectTo = n, base
}

// ExhaustRateLimit makes the next n answers say Rate-Limit-Remaining: 0
// with Rate-Limit-Reset in reset (whole seconds); a request that arrives
// before the reset is answered 429 and counted (EarlyRequests).
func (s *Server) ExhaustRateLimit(n int, reset time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimitN, s.rateReset = n, reset
}

// EarlyRequests counts requests that ignored Rate-Limit-Remaining: 0.
func (s *Server) EarlyRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.early
}

func (s *Server) takeRedirect(r *http.Request) (response, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.redirectN == 0 {
		return response{}, false
	}
	s.redirectN--
	resp := response{status: http.StatusFound, header: http.Header{}}
	resp.header.Set("Location", strings.TrimSuffix(s.redirectTo, "/")+r.URL.RequestURI())
	return resp, true
}

// rateLimitHeaders adds the Rate-Limit-* headers of ExhaustRateLimit.
func (s *Server) rateLimitHeaders(resp *response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rateLimitN == 0 {
		return
	}
	s.rateLimitN--
	if resp.header == nil {
		resp.header = http.Header{}
	}
	secs := int64((s.rateReset + time.Second - 1) / time.Second)
	resp.header.Set("Rate-Limit-Limit", "100")
	resp.header.Set("Rate-Limit-Remaining", "0")
	resp.header.Set("Rate-Limit-Reset", strconv.FormatInt(secs, 10))
	s.pausedUntil = time.Now().Add(time.Duration(secs) * time.Second)
}

// injectFault spends one unit of the Throttle or Fail knob.
func (s *Server) injectFault() (response, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().Before(s.pausedUntil) {
		s.early++
		return throttled(time.Until(s.pausedUntil)), true
	}
	if s.textN > 0 {
		s.textN--
		return response{status: s.textStatus, header: http.Header{"Content-Type": {"text/plain"}},
			body: []byte("The request was throttled because the maximum number of concurrent requests per tenant was exceeded. Please retry after some time.")}, true
	}
	if s.throttleN > 0 {
		s.throttleN--
		return throttled(s.throttleAfter), true
	}
	if s.failN > 0 {
		s.failN--
		return failure(s.failStatus), true
	}
	return response{}, false
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
