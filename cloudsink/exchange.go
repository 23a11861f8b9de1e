package cloudsink

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.uber.org/zap"
)

// Exchange Online targets: the mailbox attributes Outlook reads recipients'
// S/MIME certificates from in the global address list. Their values, in
// Account.Values and Update.Values, are the standard base64 (RFC 4648 §4,
// padded) of each certificate's DER.
const (
	TargetUserCertificate      = "exchange.UserCertificate"
	TargetUserSMimeCertificate = "exchange.UserSMimeCertificate"
)

// exchangeValuesMax is the most certificates certsync writes per mailbox
// attribute: Entra Connect's limit, kept so that switching between it and
// certsync never changes what a mailbox can hold.
const exchangeValuesMax = 15

// RefusalExchangeSynced is Account.Refusal for mailboxes Entra Connect
// syncs from on-premises.
const RefusalExchangeSynced = "mailbox synced from on-premises by Entra Connect (IsDirSynced): Entra Connect owns its UserCertificate and UserSMimeCertificate, and Exchange Online refuses other writers (\"out of the current user's write scope\"), so no write is sent"

// exchangeAnchor is the arbitration mailbox app-only clients of the admin
// API route by, as the ExchangeOnlineManagement module does.
const exchangeAnchor = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"

// ExchangeConfig configures the Exchange Online sink.
type ExchangeConfig struct {
	Environment string // "" = global
	// Endpoint overrides the environment's Exchange Online root, e.g. an
	// emulator at https://127.0.0.1:8443 (no path). "" = the environment's.
	// The token is still asked for the environment's Exchange resource.
	Endpoint string
	// RedirectHosts are further hosts a redirect may lead to, with the
	// token (tests: another name of the emulator). The environment's
	// Exchange host, its subdomains and the endpoint's host always may.
	RedirectHosts []string
	// TenantID names the tenant in every request's path (its GUID or its
	// initial domain).
	TenantID   string
	Credential azcore.TokenCredential // non-nil; the one Graph uses too
	// RootCAs, when set, is the trust used for TLS to Exchange instead of
	// the system's (for an override with a private CA).
	RootCAs *x509.CertPool
	// Concurrency is how many InvokeCommand requests are in flight
	// (default 4).
	Concurrency int
	// MaxAttempts bounds tries per request for 429, 503 and 504
	// (default 6).
	MaxAttempts int
	// MaxWait is the longest Retry-After certsync waits (default 2m). When
	// Exchange asks for longer, the item fails as temporary, with its
	// RetryAfter, for a later pass to pick up.
	MaxWait time.Duration
	// Backoff is the first wait when Exchange gives no Retry-After, doubled
	// per attempt up to MaxWait (default 2s).
	Backoff time.Duration
	// OnRetryWait: see GraphConfig.OnRetryWait.
	OnRetryWait func(time.Duration)
}

// Exchange is the Exchange Online sink: the UserCertificate and
// UserSMimeCertificate of mailboxes, through the admin API's
// InvokeCommand, which Microsoft does not document (see
// exchange_notes.md).
type Exchange struct {
	log       *zap.Logger
	cred      azcore.TokenCredential
	scope     string
	invokeURL string // {root}/adminapi/beta/{tenant}/InvokeCommand
	anchor    string
	client    *http.Client
	retryPolicy

	known *knownRecipients // non-nil
	// redirectHosts: a redirect to one of them (or a subdomain) keeps the
	// token; anywhere else is refused.
	redirectHosts []string
}

// knownRecipients is what the sink learnt from Exchange's answers.
type knownRecipients struct {
	mu sync.Mutex // guards everything below
	// listed answers lookups while a Prefetch is in force (nil otherwise).
	listed *recipientIndex
	// mailUsers are the account IDs lookups found to be mail users:
	// Set-MailUser writes them.
	mailUsers map[string]bool
	// pauseUntil: Exchange said (Rate-Limit-Remaining: 0) that no request
	// is welcome before then.
	pauseUntil time.Time
}

var _ Sink = (*Exchange)(nil)

// NewExchange builds the Exchange Online sink.
func NewExchange(cfg ExchangeConfig, log *zap.Logger) (*Exchange, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Credential == nil {
		return nil, errors.New("cloudsink: exchange: no credential")
	}
	tenant := strings.TrimSpace(cfg.TenantID)
	if tenant == "" || strings.ContainsAny(tenant, "/?#% ") {
		return nil, fmt.Errorf("cloudsink: exchange: tenant ID %q: give the tenant's GUID or initial domain (it goes in every request's path)", cfg.TenantID)
	}
	_, ep, err := environmentOrDefault(cfg.Environment)
	if err != nil {
		return nil, err
	}
	root := ep.Exchange
	if cfg.Endpoint != "" {
		if u, err := url.Parse(strings.TrimSuffix(cfg.Endpoint, "/")); err == nil && u.Path != "" {
			return nil, fmt.Errorf("cloudsink: exchange endpoint %q: give the base without a path (certsync adds /adminapi/beta/{tenant} itself)", cfg.Endpoint)
		}
		u, err := parseOverride("exchange endpoint", cfg.Endpoint)
		if err != nil {
			return nil, err
		}
		root = u.String()
	}
	hosts := append([]string{hostOnly(ep.Exchange), hostOnly(root)}, cfg.RedirectHosts...)
	x := &Exchange{
		redirectHosts: hosts,
		log:           log,
		cred:          cfg.Credential,
		scope:         ep.Exchange + "/.default",
		invokeURL:     root + "/adminapi/beta/" + tenant + "/InvokeCommand",
		anchor:        "APP:" + exchangeAnchor + "@" + tenant,
		retryPolicy:   newRetryPolicy(cfg.Concurrency, cfg.MaxAttempts, cfg.MaxWait, cfg.Backoff).observed(cfg.OnRetryWait),
		known:         &knownRecipients{mailUsers: map[string]bool{}},
		client: &http.Client{
			Transport: newTransport(cfg.RootCAs),
			// InvokeCommand redirects nothing certsync calls; a redirect is
			// answered, not followed (it would carry the token elsewhere).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	return x, nil
}

// Targets lists what the Exchange sink writes.
func (x *Exchange) Targets() []Target {
	return []Target{
		{Name: TargetUserCertificate, Limit: exchangeValuesMax},
		{Name: TargetUserSMimeCertificate, Limit: exchangeValuesMax},
	}
}

// exchangeAnswer is InvokeCommand's success body.
type exchangeAnswer struct {
	Value    []json.RawMessage `json:"value"`
	NextLink string            `json:"@odata.nextLink"`
	Warnings []string          `json:"@adminapi.warnings"`
}

// errFatal marks failures that will repeat for every request (no token,
// no connection, a refused token): the caller stops sending.
type errFatal struct{ err error }

func (e errFatal) Error() string { return e.err.Error() }
func (e errFatal) Unwrap() error { return e.err }

// invoke runs one cmdlet. Answers 429, 503 and 504 are retried after
// Retry-After (or the backoff) up to MaxAttempts; a Retry-After beyond
// MaxWait ends the tries at once. what names the call in errors and logs.
func (x *Exchange) invoke(ctx context.Context, cmdlet string, params map[string]any, query, what string) (*exchangeAnswer, error) {
	body, err := json.Marshal(map[string]any{"CmdletInput": map[string]any{"CmdletName": cmdlet, "Parameters": params}})
	if err != nil {
		return nil, fmt.Errorf("cloudsink: exchange: encode %s: %w", what, err)
	}
	target := x.invokeURL
	if query != "" {
		target += "?" + query
	}
	return x.invokeAt(ctx, cmdlet, body, target, what)
}

// invokeAt POSTs body to target: InvokeCommand's URL, or a page's
// @odata.nextLink (checked by the caller to stay on Exchange's host).
func (x *Exchange) invokeAt(ctx context.Context, cmdlet string, body []byte, target, what string) (*exchangeAnswer, error) {
	redirects := 0
	// claims, once Exchange refused a token, asks for a new one instead of
	// the cached one (see refreshClaims); only once per request.
	claims, refreshed := "", false
	for attempt := 1; ; attempt++ {
		if err := x.known.waitRateLimit(ctx, x.maxWait); err != nil {
			return nil, fmt.Errorf("cloudsink: exchange: %s: waiting for the rate limit to reset: %w", what, err)
		}
		tok, err := x.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{x.scope}, Claims: claims})
		claims = ""
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("cloudsink: exchange: %s: %w", what, ctx.Err())
			}
			return nil, errFatal{fmt.Errorf("cloudsink: exchange: token for %s: %w", x.scope, err)}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("cloudsink: exchange: %s: %w", what, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-AnchorMailbox", x.anchor)
		req.Header.Set("X-CmdletName", cmdlet)
		req.Header.Set("X-ClientApplication", "certsync")
		req.Header.Set("X-ResponseFormat", "json")
		req.Header.Set("Prefer", "odata.maxpagesize="+strconv.Itoa(exchangePageSize))
		req.Header.Set("client-request-id", newRequestID())
		resp, err := x.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("cloudsink: exchange: %s: %w", what, ctx.Err())
			}
			// A read whose answer was lost is asked again: that changes
			// nothing. A write is not: it may have landed, and the caller
			// must learn that it does not know.
			if strings.HasPrefix(cmdlet, "Get-") && attempt < x.maxAttempts {
				wait := x.backoffFor(attempt)
				x.log.Info("exchange: retrying a read after a lost answer", zap.String("call", what), zap.Error(err),
					zap.Duration("wait", wait), zap.Int("attempt", attempt+1), zap.Int("maxAttempts", x.maxAttempts))
				if sleep(ctx, wait) == nil {
					continue
				}
			}
			return nil, errFatal{fmt.Errorf("cloudsink: exchange: %s: %w", what, err)}
		}
		raw, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		_ = resp.Body.Close()
		if rerr != nil {
			return nil, fmt.Errorf("cloudsink: exchange: %s: reading the answer: %w", what, rerr)
		}
		x.known.noteRateLimit(resp.Header, time.Now())
		if isRedirect(resp.StatusCode) {
			next, err := x.redirectTarget(resp, target)
			if err != nil || redirects == maxExchangeRedirects {
				if err == nil {
					err = fmt.Errorf("more than %d redirects", maxExchangeRedirects)
				}
				return nil, fmt.Errorf("cloudsink: exchange: %s: %w", what, err)
			}
			x.log.Info("exchange: redirected", zap.String("call", what), zap.String("to", next))
			redirects++
			attempt--
			target = next
			continue
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			var ans exchangeAnswer
			if err := json.Unmarshal(raw, &ans); err != nil {
				return nil, fmt.Errorf("cloudsink: exchange: %s: the answer is not InvokeCommand's JSON: %w", what, err)
			}
			return &ans, nil
		}
		e := exchangeError(resp, raw, what)
		if resp.StatusCode == http.StatusUnauthorized && !refreshed {
			// The token expired or was revoked mid-pass (the cache hands
			// one out until shortly before its expiry, by the local
			// clock): get a new one and try again, once.
			refreshed, claims = true, refreshClaims(resp.Header.Get("WWW-Authenticate"), time.Now())
			x.log.Info("exchange: token refused; retrying once with a new token", zap.String("call", what), zap.String("message", e.Message))
			attempt--
			continue
		}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return nil, errFatal{e}
		}
		if !exchangeTemporary(resp.StatusCode, raw) || attempt >= x.maxAttempts {
			return nil, e
		}
		wait, ok := x.retryWait(resp.Header.Get("Retry-After"), attempt)
		if !ok {
			x.log.Warn("exchange: not retrying: Retry-After beyond the configured maximum wait",
				zap.String("call", what), zap.Int("status", resp.StatusCode), zap.Duration("retryAfter", wait), zap.Duration("maxWait", x.maxWait))
			return nil, e
		}
		x.log.Info("exchange: retrying request", zap.String("call", what), zap.Int("status", resp.StatusCode),
			zap.Duration("wait", wait), zap.Int("attempt", attempt+1), zap.Int("maxAttempts", x.maxAttempts))
		x.waited(wait)
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("cloudsink: exchange: %s: gave up waiting to retry: %w", what, err)
		}
	}
}

// refreshClaims is the claims request that makes the token cache fetch
// a new token: the claims challenge of a 401 when it carries one
// (WWW-Authenticate: Bearer ... error="insufficient_claims",
// claims="<base64>", Continuous Access Evaluation), else the same kind of
// challenge asking for a token issued from now on
// ({"access_token":{"nbf":{"essential":true,"value":"<unix time>"}}}).
// MSAL skips cached tokens whenever claims are given.
func refreshClaims(challenge string, now time.Time) string {
	const key = `claims="`
	if i := strings.Index(challenge, key); i >= 0 {
		rest := challenge[i+len(key):]
		if j := strings.IndexByte(rest, '"'); j > 0 {
			if b, err := base64.StdEncoding.DecodeString(rest[:j]); err == nil && json.Valid(b) {
				return string(b)
			}
		}
	}
	return fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"}}}`, now.Unix())
}

// exchangeError reads the admin API's error body. A cmdlet that ran and
// failed puts "<error id>|<exception type>|<text>" in error.details; the
// exception's short type name becomes Code and the text Message, so callers
// can tell "not found" from "out of write scope" without parsing prose.
func exchangeError(resp *http.Response, raw []byte, what string) *Error {
	e := &Error{Service: "exchange", Method: http.MethodPost, Path: "InvokeCommand " + what, Status: resp.StatusCode}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Details []struct {
				Message string `json:"message"`
			} `json:"details"`
			InnerError struct {
				Message           string `json:"message"`
				Type              string `json:"type"`
				InternalException struct {
					Message string `json:"message"`
				} `json:"internalException"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		if m := body.Error.InnerError.InternalException.Message; m != "" {
			e.Message = m
		}
		if len(body.Error.Details) > 0 {
			parts := strings.SplitN(body.Error.Details[0].Message, "|", 3)
			if len(parts) == 3 {
				typ := parts[1]
				e.Code = typ[strings.LastIndex(typ, ".")+1:]
				e.Message = parts[2]
			} else if body.Error.Details[0].Message != "" {
				e.Message = body.Error.Details[0].Message
			}
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	e.RetryAfter, _ = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}

// Exchange's exception types certsync tells apart.
const (
	exoNotFound  = "ManagementObjectNotFoundException"
	exoAmbiguous = "ManagementObjectAmbiguousException"
)

func newRequestID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return ""
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
