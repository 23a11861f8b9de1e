package cloudsink

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Throttling as Exchange Online does it (exchange_notes.md): 429 with
// Retry-After; 503, 504 and 408 (the front door timing out); a plain-text
// answer "… maximum number of concurrent requests per tenant …"; the
// Rate-Limit-Limit/-Remaining/-Reset headers; and a redirect to another
// regional host.

// concurrencyAnswer is the text of Exchange's answer to a tenant over its
// concurrent request budget (not JSON).
const concurrencyAnswer = "maximum number of concurrent requests"

// maxExchangeRedirects bounds the redirects one request follows.
const maxExchangeRedirects = 3

// exchangeTemporary: the answer says "later", not "no".
func exchangeTemporary(status int, body []byte) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return true
	}
	return status >= 400 && bytes.Contains(bytes.ToLower(body), []byte(concurrencyAnswer))
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirectTarget is where a redirect leads, if the token may go there: an
// https URL on one of the environment's Exchange hosts (or a subdomain:
// regional hosts), the endpoint's host, or a host the configuration adds.
func (x *Exchange) redirectTarget(resp *http.Response, from string) (string, error) {
	loc := resp.Header.Get("Location")
	base, err := url.Parse(from)
	if err != nil || loc == "" {
		return "", fmt.Errorf("redirect (%d) without a usable Location", resp.StatusCode)
	}
	next, err := base.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("redirect to %q: %w", loc, err)
	}
	host := strings.ToLower(next.Hostname())
	allowed := false
	for _, h := range x.redirectHosts {
		h = strings.ToLower(h)
		if h != "" && (host == h || strings.HasSuffix(host, "."+h)) {
			allowed = true
		}
	}
	if next.Scheme != "https" || !allowed {
		return "", fmt.Errorf("redirected to %s, which is not one of Exchange Online's hosts (%s): not sending the token there", next.Redacted(), strings.Join(x.redirectHosts, ", "))
	}
	return next.String(), nil
}

func hostOnly(root string) string {
	u, err := url.Parse(root)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// noteRateLimit reads the Rate-Limit-* headers: none remaining pauses
// every request of the sink until the reset (seconds from now, or an
// RFC 3339 or HTTP date).
func (k *knownRecipients) noteRateLimit(h http.Header, now time.Time) {
	rem, err := strconv.Atoi(strings.TrimSpace(h.Get("Rate-Limit-Remaining")))
	if err != nil || rem > 0 {
		return
	}
	reset := strings.TrimSpace(h.Get("Rate-Limit-Reset"))
	var until time.Time
	if secs, err := strconv.ParseFloat(reset, 64); err == nil && secs >= 0 {
		until = now.Add(time.Duration(secs * float64(time.Second)))
	} else if t, err := time.Parse(time.RFC3339, reset); err == nil {
		until = t
	} else if t, err := http.ParseTime(reset); err == nil {
		until = t
	} else {
		until = now.Add(time.Second)
	}
	k.mu.Lock()
	if until.After(k.pauseUntil) {
		k.pauseUntil = until
	}
	k.mu.Unlock()
}

// waitRateLimit waits out a pause, at most maxWait.
func (k *knownRecipients) waitRateLimit(ctx context.Context, maxWait time.Duration) error {
	k.mu.Lock()
	wait := time.Until(k.pauseUntil)
	k.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	return sleep(ctx, min(wait, maxWait))
}
