package cloudsink

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"go.uber.org/zap"
)

// Check statuses.
const (
	CheckOK   = "ok"
	CheckWarn = "warn"
	CheckFail = "fail"
	CheckSkip = "skip" // not run: a check it depends on failed
)

// Check is one line of `certsync doctor`.
type Check struct {
	Name   string // short id: "token graph", "graph permission", ...
	Status string // CheckOK, CheckWarn, CheckFail or CheckSkip
	Detail string // what was found; never a token or a secret
	Fix    string // what the admin should do, when not ok
}

// DoctorConfig is the cloud half of certsync's configuration, as the
// sinks get it.
type DoctorConfig struct {
	Credential  azcore.TokenCredential
	Environment string // "" = global
	// GraphEndpoint and ExchangeEndpoint override the environment's roots
	// (emulators); AuthorityHost only names the authority in messages
	// when it cannot be read from an error. "" = the environment's.
	GraphEndpoint, ExchangeEndpoint, AuthorityHost string
	TenantID                                       string
	RootCAs                                        *x509.CertPool
	Graph, Exchange                                bool // which targets are enabled
	// IssuingCAs are the CAs of policy.issuingCAFile: Exchange's
	// trusted-CA collection is checked against them (nil: not checked).
	IssuingCAs []*x509.Certificate
	// SmimeIssuingCAs: certsync keeps that collection
	// (cloud.exchange.smimeIssuingCAs).
	SmimeIssuingCAs bool
	// Timeout bounds each check (default 30s).
	Timeout time.Duration
}

// Directory role template IDs (Entra built-in roles).
const (
	rolePrivilegedAuthAdmin = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
	roleExchangeAdmin       = "29232cdf-9323-42fd-ade2-1d097af3e4de"
	roleGlobalAdmin         = "62e90394-69f5-4237-9190-012177145e10"
)

// Application permissions certsync needs.
const (
	permUserReadWriteAll = "User.ReadWrite.All"
	permManageAsApp      = "Exchange.ManageAsApp"
)

// Diagnose checks the cloud credential and, per enabled target, the
// token's permissions and a read that proves them. Checks run in order
// and each has its own deadline; a check whose prerequisite failed is
// skipped, not run against a known failure.
func Diagnose(ctx context.Context, cfg DoctorConfig, log *zap.Logger) []Check {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	envName, ep, err := environmentOrDefault(cfg.Environment)
	if err != nil {
		return []Check{{Name: "cloud environment", Status: CheckFail, Detail: err.Error(),
			Fix: "set cloud.environment to one of " + strings.Join(environmentNames(), ", ")}}
	}
	if cfg.Credential == nil {
		return []Check{{Name: "credential", Status: CheckFail, Detail: "no cloud credential configured",
			Fix: "configure cloud.credential (certificate, secret, managed identity or workload identity)"}}
	}
	if !cfg.Graph && !cfg.Exchange {
		return []Check{{Name: "cloud targets", Status: CheckSkip, Detail: "neither Graph nor Exchange is enabled; nothing to check"}}
	}
	d := doctor{cfg: cfg, log: log, env: envName, ep: ep}
	var out []Check
	if cfg.Graph {
		out = append(out, d.graph(ctx)...)
	}
	if cfg.Exchange {
		out = append(out, d.exchange(ctx)...)
	}
	for _, c := range out {
		log.Debug("doctor: check", zap.String("check", c.Name), zap.String("status", c.Status), zap.String("detail", c.Detail))
	}
	return out
}

type doctor struct {
	cfg DoctorConfig
	log *zap.Logger
	env string
	ep  Endpoints
}

// tokenClaims are the claims of an Entra access token the doctor reads.
type tokenClaims struct {
	Aud   string   `json:"aud"`
	TID   string   `json:"tid"`
	AppID string   `json:"appid"` // v1.0 tokens
	AZP   string   `json:"azp"`   // v2.0 tokens
	Roles []string `json:"roles"`
	Wids  []string `json:"wids"`
	Exp   int64    `json:"exp"`
	hasW  bool
}

// decodeClaims reads a JWT's payload without verifying it: the doctor
// only reports what the token says; Graph and Exchange do the verifying.
func decodeClaims(token string) (tokenClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return tokenClaims{}, errors.New("the access token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return tokenClaims{}, fmt.Errorf("the access token's payload is not base64url: %w", err)
	}
	var c tokenClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return tokenClaims{}, fmt.Errorf("the access token's payload is not JSON: %w", err)
	}
	var probe map[string]json.RawMessage
	_ = json.Unmarshal(raw, &probe)
	_, c.hasW = probe["wids"]
	if c.AppID == "" {
		c.AppID = c.AZP
	}
	return c, nil
}

// token acquires a token for scope and reports it as check name. The
// claims are nil when there is no token or it cannot be read.
func (d *doctor) token(ctx context.Context, name, scope string) (Check, string, *tokenClaims) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	tok, err := d.cfg.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		detail, fix := explainTokenError(err, d.authorityHost(), d.cfg.Timeout)
		return Check{Name: name, Status: CheckFail, Detail: "no token for " + scope + ": " + detail, Fix: fix}, "", nil
	}
	c, cerr := decodeClaims(tok.Token)
	if cerr != nil {
		return Check{Name: name, Status: CheckOK, Detail: fmt.Sprintf("token for %s acquired (expires %s); %v", scope, tok.ExpiresOn.UTC().Format(time.RFC3339), cerr)}, tok.Token, nil
	}
	detail := fmt.Sprintf("token for %s acquired: app %s, tenant %s, expires %s", scope, c.AppID, c.TID, tok.ExpiresOn.UTC().Format(time.RFC3339))
	ck := Check{Name: name, Status: CheckOK, Detail: detail}
	if d.cfg.TenantID != "" && c.TID != "" && !strings.EqualFold(c.TID, d.cfg.TenantID) {
		// A domain name as the tenant is fine; a different GUID is not.
		if looksLikeGUID(d.cfg.TenantID) {
			ck.Status, ck.Fix = CheckWarn, fmt.Sprintf("the token is from tenant %s but cloud.tenantId is %s: check cloud.tenantId", c.TID, d.cfg.TenantID)
		}
	}
	return ck, tok.Token, &c
}

func (d *doctor) authorityHost() string {
	raw := d.cfg.AuthorityHost
	if raw == "" {
		raw = d.ep.Authority
	}
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return raw
}

func (d *doctor) graph(ctx context.Context) []Check {
	scope := d.ep.Graph + "/.default"
	tc, tok, claims := d.token(ctx, "token graph", scope)
	out := []Check{tc}
	if tok == "" {
		return append(out,
			Check{Name: "graph permission", Status: CheckSkip, Detail: "no Graph token"},
			Check{Name: "graph role", Status: CheckSkip, Detail: "no Graph token"},
			Check{Name: "graph read", Status: CheckSkip, Detail: "no Graph token"})
	}
	out = append(out, permissionCheck("graph permission", claims, permUserReadWriteAll,
		"App registrations → certsync → API permissions → Add a permission → Microsoft Graph → Application permissions → "+permUserReadWriteAll+", then Grant admin consent"))
	out = append(out, roleCheck("graph role", claims, []string{rolePrivilegedAuthAdmin, roleGlobalAdmin}, "Privileged Authentication Administrator",
		"writing certificateUserIds needs it",
		"Entra admin center → Roles and administrators → Privileged Authentication Administrator → Add assignments → the certsync app"))
	out = append(out, d.graphRead(ctx, tok))
	return out
}

func (d *doctor) exchange(ctx context.Context) []Check {
	scope := d.ep.Exchange + "/.default"
	tc, tok, claims := d.token(ctx, "token exchange", scope)
	out := []Check{tc}
	if tok == "" {
		return append(out,
			Check{Name: "exchange permission", Status: CheckSkip, Detail: "no Exchange token"},
			Check{Name: "exchange role", Status: CheckSkip, Detail: "no Exchange token"},
			Check{Name: "exchange read", Status: CheckSkip, Detail: "no Exchange token"})
	}
	out = append(out, permissionCheck("exchange permission", claims, permManageAsApp,
		"App registrations → certsync → API permissions → Add a permission → APIs my organization uses → Office 365 Exchange Online → Application permissions → "+permManageAsApp+", then Grant admin consent"))
	out = append(out, roleCheck("exchange role", claims, []string{roleExchangeAdmin, roleGlobalAdmin}, "Exchange Administrator",
		"Set-Mailbox needs an Exchange role; a custom Exchange RBAC role assigned to the app does not show in the token",
		"Entra admin center → Roles and administrators → Exchange Administrator → Add assignments → the certsync app (or assign a custom Exchange role with Get-Mailbox and Set-Mailbox to its service principal)"))
	read, x := d.exchangeRead(ctx)
	out = append(out, read)
	if d.cfg.IssuingCAs != nil {
		out = append(out, d.exchangeTrust(ctx, x, read.Status == CheckOK))
	}
	return out
}

// exchangeTrust says whether Exchange's trusted-CA collection (what
// Outlook on the web validates S/MIME certificates with) holds the CAs
// whose certificates certsync publishes.
func (d *doctor) exchangeTrust(ctx context.Context, x *Exchange, canRead bool) Check {
	const name = "exchange trust"
	if !canRead {
		return Check{Name: name, Status: CheckSkip, Detail: "Exchange could not be read"}
	}
	defer x.client.CloseIdleConnections()
	keep := "set cloud.exchange.smimeIssuingCAs: true (certsync then keeps the collection equal to policy.issuingCAFile), or run Set-SmimeConfig -SMIMECertificateIssuingCA with an .sst of those CAs"
	if d.cfg.SmimeIssuingCAs {
		keep = "run certsync sync: it sets the collection from policy.issuingCAFile"
		if _, err := SmimeStore(d.cfg.IssuingCAs, time.Now()); err != nil {
			return Check{Name: name, Status: CheckFail, Detail: err.Error(), Fix: "fix policy.issuingCAFile: Exchange refuses such a store"}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	held, err := x.SmimeIssuingCAs(ctx)
	if err != nil {
		return Check{Name: name, Status: CheckFail, Detail: oneLine(err.Error(), 300),
			Fix: "the app's Exchange role must include Get-SmimeConfig (and Set-SmimeConfig to keep the collection); a store Exchange holds but certsync cannot read is named above"}
	}
	var missing []string
	for _, ca := range d.cfg.IssuingCAs {
		if !slices.ContainsFunc(held, func(h []byte) bool { return bytes.Equal(h, ca.Raw) }) {
			missing = append(missing, ca.Subject.String())
		}
	}
	switch {
	case len(held) == 0:
		return Check{Name: name, Status: CheckWarn, Detail: "Exchange's trusted-CA collection (Get-SmimeConfig SMIMECertificateIssuingCA) is empty: Outlook on the web cannot validate the S/MIME certificates certsync publishes", Fix: keep}
	case len(missing) > 0:
		return Check{Name: name, Status: CheckWarn, Detail: fmt.Sprintf("Exchange's trusted-CA collection lacks %d of the %d CAs of policy.issuingCAFile: %s; Outlook on the web may not validate certificates they issued",
			len(missing), len(d.cfg.IssuingCAs), strings.Join(missing, "; ")), Fix: keep}
	}
	return Check{Name: name, Status: CheckOK, Detail: fmt.Sprintf("Exchange's trusted-CA collection holds the %d CAs of policy.issuingCAFile (%d certificates in all)", len(d.cfg.IssuingCAs), len(held))}
}

// permissionCheck looks for an application permission in the roles claim.
func permissionCheck(name string, c *tokenClaims, want, fix string) Check {
	if c == nil {
		return Check{Name: name, Status: CheckWarn, Detail: "cannot tell: the access token's claims cannot be read", Fix: "the read check below shows whether the permission works"}
	}
	if slices.ContainsFunc(c.Roles, func(r string) bool { return strings.EqualFold(r, want) }) {
		return Check{Name: name, Status: CheckOK, Detail: "application permission " + want + " granted"}
	}
	found := "none"
	if len(c.Roles) > 0 {
		found = strings.Join(c.Roles, ", ")
	}
	return Check{Name: name, Status: CheckFail,
		Detail: fmt.Sprintf("application permission %s is not granted (the token's roles: %s)", want, found),
		Fix:    "grant it: " + fix}
}

// roleCheck looks for a directory role in the wids claim. Its absence is
// a warning, not a failure: a token may leave wids out, and roles scoped
// to an administrative unit (or Exchange's own RBAC) never appear in it.
func roleCheck(name string, c *tokenClaims, accept []string, roleName, why, fix string) Check {
	switch {
	case c == nil:
		return Check{Name: name, Status: CheckWarn, Detail: "cannot tell whether the app holds " + roleName + ": the access token's claims cannot be read", Fix: "make sure it does (" + why + "): " + fix}
	case !c.hasW:
		return Check{Name: name, Status: CheckWarn, Detail: "cannot tell whether the app holds " + roleName + ": the token has no wids claim", Fix: "make sure it does (" + why + "): " + fix}
	}
	for _, w := range c.Wids {
		if slices.ContainsFunc(accept, func(a string) bool { return strings.EqualFold(a, w) }) {
			held := roleName
			if strings.EqualFold(w, roleGlobalAdmin) {
				held = "Global Administrator (more than " + roleName + " needs)"
			}
			return Check{Name: name, Status: CheckOK, Detail: "directory role " + held + " assigned"}
		}
	}
	return Check{Name: name, Status: CheckWarn,
		Detail: "the token lists no tenant-wide " + roleName + " role (" + why + ")",
		Fix:    "unless the role is assigned another way, assign it: " + fix}
}

// graphRead lists one user with authorizationInfo, the property certsync
// reads and writes, using the token already acquired.
func (d *doctor) graphRead(ctx context.Context, tok string) Check {
	const name = "graph read"
	root := d.ep.Graph
	if d.cfg.GraphEndpoint != "" {
		u, err := parseOverride("graph endpoint", d.cfg.GraphEndpoint)
		if err != nil {
			return Check{Name: name, Status: CheckFail, Detail: err.Error(), Fix: "fix cloud.graphEndpoint"}
		}
		root = u.String()
	}
	target := root + "/v1.0/users?$top=1&$select=id,authorizationInfo"
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return Check{Name: name, Status: CheckFail, Detail: err.Error(), Fix: "fix cloud.graphEndpoint"}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("client-request-id", newRequestID())
	tr := newTransport(d.cfg.RootCAs)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		detail, fix := explainTransportError(err, req.URL.Host, "Graph", d.cfg.Timeout)
		return Check{Name: name, Status: CheckFail, Detail: "GET /v1.0/users: " + detail, Fix: fix}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Check{Name: name, Status: CheckFail, Detail: fmt.Sprintf("GET /v1.0/users on %s: reading the answer: %v", req.URL.Host, err), Fix: "try again; check the network path to " + req.URL.Host}
	}
	if resp.StatusCode == http.StatusOK {
		var list struct {
			Value []json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return Check{Name: name, Status: CheckFail, Detail: fmt.Sprintf("GET /v1.0/users on %s answered 200 with a body that is not Graph's JSON: %v", req.URL.Host, err),
				Fix: "check that cloud.graphEndpoint is Microsoft Graph (a proxy may be answering)"}
		}
		return Check{Name: name, Status: CheckOK, Detail: fmt.Sprintf("read %d user(s) with authorizationInfo from %s", len(list.Value), req.URL.Host)}
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &body)
	code := body.Error.Code
	if code == "" {
		code = http.StatusText(resp.StatusCode)
	}
	detail := fmt.Sprintf("GET /v1.0/users on %s: %d %s: %s", req.URL.Host, resp.StatusCode, code, oneLine(body.Error.Message, 200))
	fix := "see Graph's error above"
	switch resp.StatusCode {
	case http.StatusForbidden:
		fix = "grant the Microsoft Graph application permission " + permUserReadWriteAll + " with admin consent; new grants can take a few minutes to reach tokens"
	case http.StatusUnauthorized:
		fix = "Graph refused the token: check that cloud.environment is the tenant's cloud (" + d.env + " now) and that cloud.graphEndpoint, when set, is that cloud's Graph"
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusBadGateway:
		fix = "Graph is busy or unavailable: try again later"
	}
	return Check{Name: name, Status: CheckFail, Detail: detail, Fix: fix}
}

// exchangeRead runs Get-Mailbox -ResultSize 1 through the sink's own
// InvokeCommand path, once (no retries).
// It returns the sink for further checks (nil when it could not be built).
func (d *doctor) exchangeRead(ctx context.Context) (Check, *Exchange) {
	const name = "exchange read"
	x, err := NewExchange(ExchangeConfig{
		Environment: d.cfg.Environment, Endpoint: d.cfg.ExchangeEndpoint, TenantID: d.cfg.TenantID,
		Credential: d.cfg.Credential, RootCAs: d.cfg.RootCAs, MaxAttempts: 1,
	}, d.log)
	if err != nil {
		return Check{Name: name, Status: CheckFail, Detail: err.Error(), Fix: "set cloud.tenantId (the tenant's GUID or initial domain) and a valid cloud.exchangeEndpoint"}, nil
	}
	return d.exchangeGetMailbox(ctx, x), x
}

func (d *doctor) exchangeGetMailbox(ctx context.Context, x *Exchange) Check {
	const name = "exchange read"
	defer x.client.CloseIdleConnections()
	host := x.invokeURL
	if u, err := url.Parse(x.invokeURL); err == nil {
		host = u.Host
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	const what = "Get-Mailbox -ResultSize 1"
	ans, err := x.invoke(ctx, "Get-Mailbox", map[string]any{"ResultSize": 1}, "$select=ExternalDirectoryObjectId", what)
	if err == nil {
		return Check{Name: name, Status: CheckOK, Detail: fmt.Sprintf("%s on %s returned %d mailbox(es)", what, host, len(ans.Value))}
	}
	var e *Error
	if errors.As(err, &e) {
		detail := fmt.Sprintf("%s on %s: %d %s: %s", what, host, e.Status, e.Code, oneLine(e.Message, 200))
		fix := "see Exchange's error above"
		switch {
		case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
			fix = "Exchange refused the app: grant Office 365 Exchange Online → " + permManageAsApp + " with admin consent, assign the app an Exchange role (Exchange Administrator), and check cloud.tenantId and cloud.environment"
		case strings.Contains(e.Code, "CommandNotFound") || strings.Contains(strings.ToLower(e.Message), "is not recognized"):
			fix = "the app's Exchange role does not include Get-Mailbox: assign it Exchange Administrator or a custom role with Get-Mailbox and Set-Mailbox"
		case e.Temporary():
			fix = "Exchange is busy or unavailable: try again later"
		}
		return Check{Name: name, Status: CheckFail, Detail: detail, Fix: fix}
	}
	detail, fix := explainTransportError(err, host, "Exchange Online", d.cfg.Timeout)
	return Check{Name: name, Status: CheckFail, Detail: what + ": " + detail, Fix: fix}
}

// aadstsFix names the likely cause of an Entra error code. Codes from
// Microsoft's "Microsoft Entra authentication and authorization error
// codes" reference.
func aadstsFix(code int) string {
	switch code {
	case 7000215:
		return "the client secret is wrong: give certsync the secret's Value (not its Secret ID), or create a new secret under App registrations → certsync → Certificates & secrets"
	case 7000222:
		return "the client secret has expired: create a new one under App registrations → certsync → Certificates & secrets and update cloud.credential"
	case 7000218:
		return "the request carried no secret or certificate: configure cloud.credential"
	case 700016:
		return "no application with this client ID in the tenant: check cloud.clientId (the Application (client) ID) and cloud.tenantId, and that the app is registered in that tenant"
	case 90002:
		return "the tenant was not found: check cloud.tenantId (the Directory (tenant) ID) and cloud.environment (the tenant's national cloud)"
	case 700027, 700021:
		return "the client certificate is not registered on the app or does not match its key: upload its public part under App registrations → certsync → Certificates & secrets"
	case 700024:
		return "the client assertion's time is outside its window: check this machine's clock"
	case 500011:
		return "the resource's service principal is not in the tenant (for Exchange: the tenant has no Exchange Online), or cloud.environment is not the tenant's cloud"
	case 7000112, 700005:
		return "the application is disabled in the tenant: enable it (Enterprise applications → certsync → Properties)"
	case 50053, 50057:
		return "the app's service principal is disabled or locked: check Enterprise applications → certsync"
	}
	return "see Entra's error above (https://login.microsoftonline.com/error?code=" + strconv.Itoa(code) + ")"
}

var aadstsRE = regexp.MustCompile(`AADSTS(\d+)`)

// explainTokenError turns a credential's failure into a detail and a fix.
// Entra's answers are read from the response (their AADSTS code and the
// first sentence of the description); anything else is a transport
// failure to the authority.
func explainTokenError(err error, authority string, timeout time.Duration) (string, string) {
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) && afe.RawResponse != nil {
		host := authority
		if afe.RawResponse.Request != nil && afe.RawResponse.Request.URL != nil {
			host = afe.RawResponse.Request.URL.Host
		}
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			Codes       []int  `json:"error_codes"`
		}
		payload, _ := runtime.Payload(afe.RawResponse)
		_ = json.Unmarshal(payload, &body)
		code := 0
		if len(body.Codes) > 0 {
			code = body.Codes[0]
		} else if m := aadstsRE.FindStringSubmatch(body.Description); m != nil {
			code, _ = strconv.Atoi(m[1])
		}
		desc := body.Description
		if i := strings.Index(desc, "Trace ID:"); i >= 0 {
			desc = desc[:i]
		}
		desc = oneLine(desc, 300)
		if code == 0 {
			return fmt.Sprintf("%s answered %d %s %s", host, afe.RawResponse.StatusCode, body.Error, desc),
				"see the authority's answer above; check cloud.tenantId, cloud.clientId and the credential"
		}
		if !strings.HasPrefix(desc, "AADSTS") {
			desc = fmt.Sprintf("AADSTS%d: %s", code, desc)
		}
		return fmt.Sprintf("%s answered %s", host, desc), aadstsFix(code)
	}
	if m := aadstsRE.FindStringSubmatch(err.Error()); m != nil {
		code, _ := strconv.Atoi(m[1])
		return "AADSTS" + m[1], aadstsFix(code)
	}
	return explainTransportError(err, authority, "the Entra authority", timeout)
}

// explainTransportError names why host could not be reached: TLS trust,
// name resolution, refusal, or no answer in time.
func explainTransportError(err error, host, what string, timeout time.Duration) (string, string) {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			host = u.Host
		}
	}
	msg := err.Error()
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certInvalid x509.CertificateInvalidError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &unknownCA) || strings.Contains(msg, "certificate signed by unknown authority"):
		return fmt.Sprintf("TLS to %s: its certificate is signed by an authority this machine does not trust", host),
			"add the issuing CA to the system trust store (a TLS-inspecting proxy's CA, when one sits in the path), or check that " + host + " is really " + what
	case errors.As(err, &hostErr) || strings.Contains(msg, "certificate is valid for"):
		return fmt.Sprintf("TLS to %s: its certificate is not valid for that name", host), "check the endpoint's host name, and any proxy in the path"
	case errors.As(err, &certInvalid) || strings.Contains(msg, "certificate has expired"):
		return fmt.Sprintf("TLS to %s: its certificate is invalid (%s)", host, oneLine(msg, 120)), "check this machine's clock and any TLS-inspecting proxy"
	case errors.As(err, &dnsErr) || strings.Contains(msg, "no such host"):
		return fmt.Sprintf("cannot resolve %s", host), "check DNS on this machine, the endpoint's name and cloud.environment"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "deadline exceeded") || strings.Contains(msg, "i/o timeout"):
		return fmt.Sprintf("no answer from %s within %s", host, timeout), "check the network path (firewall, proxy: HTTPS_PROXY) to " + host
	case strings.Contains(msg, "connection refused"):
		return fmt.Sprintf("cannot connect to %s: connection refused", host), "check the network path (firewall, proxy: HTTPS_PROXY) to " + host + ", and the endpoint setting"
	}
	return fmt.Sprintf("cannot reach %s: %s", host, oneLine(msg, 200)), "check the network path (firewall, proxy: HTTPS_PROXY) to " + host
}

// oneLine squeezes text onto one line of at most n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}

func looksLikeGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}
