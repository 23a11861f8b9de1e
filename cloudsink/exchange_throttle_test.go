package cloudsink

import (
	"context"
	"strings"
	"testing"
	"time"
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
