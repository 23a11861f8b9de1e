package cloudsink

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/cloudsink/exotest"
	"github.com/certsync/certsync/cloudsink/graphtest"
)

// Every way Exchange says "later" is waited out; a redirect keeps the
// token only on Exchange's own hosts.
func TestExchangeThrottling(t *testing.T) {
	certs := testCerts(t, 3)
	lookup := []Lookup{{Key: "k", Property: "userPrincipalName", Value: "ada@contoso.example"}}
	cases := []struct {
		name     string
		cfg      ExchangeConfig
		knob     func(env exoEnv)
		wantErr  string // "" = the lookup succeeds
		check    func(t *testing.T, env exoEnv)
		minDelay time.Duration
	}{
		{name: "408", knob: func(env exoEnv) { env.exo.Fail(2, 408) }},
		{name: "503", knob: func(env exoEnv) { env.exo.Fail(2, 503) }},
		{name: "504", knob: func(env exoEnv) { env.exo.Fail(2, 504) }},
		{name: "plain-text concurrency answer", knob: func(env exoEnv) { env.exo.FailText(2, 429) }},
		{name: "plain-text concurrency answer as 500", knob: func(env exoEnv) { env.exo.FailText(1, 500) }},
		{name: "429 with Retry-After", knob: func(env exoEnv) { env.exo.Throttle(1, time.Second) }, minDelay: time.Second},
		{name: "rate limit exhausted", knob: func(env exoEnv) { env.exo.ExhaustRateLimit(1, time.Second) },
			check: func(t *testing.T, env exoEnv) {
				if n := env.exo.EarlyRequests(); n != 0 {
					t.Errorf("%d requests came before Rate-Limit-Reset", n)
				}
			}},
		{name: "302 to another regional host", cfg: ExchangeConfig{RedirectHosts: []string{"localhost"}},
			knob: func(env exoEnv) { env.exo.Redirect(1, strings.Replace(env.exo.URL(), "127.0.0.1", "localhost", 1)) },
			check: func(t *testing.T, env exoEnv) {
				reqs := env.exo.Requests()
				if len(reqs) != 2 || !strings.HasPrefix(reqs[1].Host, "localhost") || reqs[1].Status != 200 {
					t.Errorf("requests %+v: want the redirect followed to localhost", reqs)
				}
			}},
		{name: "302 elsewhere keeps the token home",
			knob:    func(env exoEnv) { env.exo.Redirect(1, strings.Replace(env.exo.URL(), "127.0.0.1", "localhost", 1)) },
			wantErr: "not one of Exchange Online's hosts",
			check: func(t *testing.T, env exoEnv) {
				for _, r := range env.exo.Requests() {
					if strings.HasPrefix(r.Host, "localhost") {
						t.Errorf("the token went to %s", r.Host)
					}
				}
			}},
		{name: "redirect loop", cfg: ExchangeConfig{RedirectHosts: []string{"localhost"}},
			knob:    func(env exoEnv) { env.exo.Redirect(10, env.exo.URL()) },
			wantErr: "more than 3 redirects"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := startExchange(t, mailboxes(certs), tc.cfg)
			tc.knob(env)
			start := time.Now()
			got, err := env.x.Lookup(context.Background(), lookup)
			if err == nil {
				err = got["k"].Err
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("lookup: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("lookup error %v, want %q", err, tc.wantErr)
			}
			if d := time.Since(start); d < tc.minDelay {
				t.Errorf("done after %v, want at least %v", d, tc.minDelay)
			}
			if tc.check != nil {
				tc.check(t, env)
			}
		})
	}
}

// A token that runs out in the middle of a pass: Exchange answers 401,
// the sink gets a new token (past the cache) and retries that request
// once; every write lands. A token Exchange keeps refusing is not
// retried twice.
func TestExchangeTokenExpiresMidPass(t *testing.T) {
	certs := testCerts(t, 4)
	boxes := []exotest.Mailbox{}
	var updates []Update
	for i := range 3 {
		id := fmt.Sprintf("%08d-1111-4111-8111-111111111111", i)
		boxes = append(boxes, exotest.Mailbox{UserPrincipalName: fmt.Sprintf("u%d@contoso.example", i), ExternalDirectoryObjectID: id})
		updates = append(updates, Update{Key: id, AccountID: id, Target: TargetUserCertificate, Values: b64(certs[i])})
	}
	env := startExchange(t, boxes, ExchangeConfig{Concurrency: 1})
	tokens := func() int {
		n := 0
		for _, r := range env.g.Requests() {
			if strings.HasSuffix(r.Path, "/oauth2/v2.0/token") && r.Status == 200 {
				n++
			}
		}
		return n
	}
	env.exo.ExpireTokensAfter(1)
	for i, r := range env.x.Apply(context.Background(), updates) {
		if r.Err != nil {
			t.Errorf("update %d: %v", i, r.Err)
		}
	}
	refused := 0
	for _, r := range env.exo.Requests() {
		if r.Status == 401 {
			refused++
		}
	}
	if refused != 1 || env.exo.Writes() != 3 || tokens() != 2 {
		t.Fatalf("%d answers 401, %d writes, %d tokens; want 1 refusal, 3 writes, 2 tokens", refused, env.exo.Writes(), tokens())
	}

	// A token Exchange refuses whatever its age (no Exchange.ManageAsApp):
	// one retry with a new token, then the error.
	g := startEmulator(t, graphtest.Options{ClientSecret: testSecret})
	exo, err := exotest.Mount(g, exotest.Options{Roles: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	x, err := NewExchange(ExchangeConfig{Credential: secretCredential(t, g), Endpoint: exo.URL(), RootCAs: g.RootCAs(), TenantID: exo.TenantID()}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.SmimeIssuingCAs(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a refused token: %v, want Exchange's 401", err)
	}
	if reqs := exo.Requests(); len(reqs) != 2 {
		t.Errorf("%d requests for a token Exchange refuses, want 2 (one retry)", len(reqs))
	}
}

func TestRefreshClaims(t *testing.T) {
	now := time.Unix(1700000000, 0)
	challenge := `Bearer realm="", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNjAwMDAwMDAwIn19fQ=="`
	for _, tt := range []struct{ in, want string }{
		{challenge, `{"access_token":{"nbf":{"essential":true,"value":"1600000000"}}}`},
		{`Bearer client_id="00000002-0000-0ff1-ce00-000000000000", error="invalid_token"`, `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`},
		{`Bearer claims="not base64"`, `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`},
	} {
		if got := refreshClaims(tt.in, now); got != tt.want {
			t.Errorf("refreshClaims(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
