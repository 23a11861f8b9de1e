package cloudsink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink/graphtest"
)

func newValues(u graphtest.User) []string {
	return []string{"X509:<SKI>" + strings.ReplaceAll(u.ID, "-", ""), u.CertificateUserIDs[0]}
}

func updatesFor(users []graphtest.User) []Update {
	out := make([]Update, len(users))
	for i, u := range users {
		out[i] = Update{Key: "anchor-" + u.ID, AccountID: u.ID, Target: TargetCertificateUserIDs, Values: newValues(u)}
	}
	return out
}

// warm gets the token, so request counts below are Graph's alone.
func warm(t *testing.T, g *Graph, srv *graphtest.Server) {
	t.Helper()
	if _, err := g.Lookup(context.Background(), []Lookup{{Key: "warm", Property: "mail", Value: "nobody@contoso.example"}}); err != nil {
		t.Fatal(err)
	}
	srv.ResetRequests()
}

func checkConfirmed(t *testing.T, srv *graphtest.Server, users []graphtest.User, updates []Update, results []Result) {
	t.Helper()
	if len(results) != len(updates) {
		t.Fatalf("%d results for %d updates", len(results), len(updates))
	}
	for i, r := range results {
		if r.Key != updates[i].Key || r.Target != updates[i].Target {
			t.Fatalf("result %d is for %s/%s, want %s/%s", i, r.Key, r.Target, updates[i].Key, updates[i].Target)
		}
		if r.Err != nil {
			t.Errorf("update %s: %v", r.Key, r.Err)
		}
	}
	for _, u := range users {
		now, _ := srv.User(u.ID)
		if !slices.Equal(now.CertificateUserIDs, newValues(u)) {
			t.Errorf("user %s holds %v, want %v", u.ID, now.CertificateUserIDs, newValues(u))
		}
	}
}

func TestApply45Updates(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(45)})
	users := srv.Users()
	g := secretGraph(t, srv, GraphConfig{Concurrency: 2})
	warm(t, g, srv)
	updates := updatesFor(users)
	results := g.Apply(context.Background(), updates)
	checkConfirmed(t, srv, users, updates, results)
	if srv.Writes() != 45 {
		t.Errorf("Writes() = %d, want 45", srv.Writes())
	}
	reqs := splitRequests(srv.Requests())
	if len(reqs.direct) != 0 || len(reqs.items["PATCH"]) != 45 || len(reqs.envelopes) != 3 {
		t.Errorf("%d direct requests, %d PATCH items, %d $batch requests; want 0, 45, 3", len(reqs.direct), len(reqs.items["PATCH"]), len(reqs.envelopes))
	}
	for _, e := range reqs.envelopes {
		if !e.GzipBody || e.Status != 200 {
			t.Errorf("$batch %s: gzip %v, status %d; the SDK compresses request bodies", e.BatchID, e.GzipBody, e.Status)
		}
	}
	for id, n := range reqs.perBatch {
		if n > 20 {
			t.Errorf("%s carried %d items", id, n)
		}
	}
}

func TestApplyRetriesThrottledItems(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(20)})
	users := srv.Users()
	g := secretGraph(t, srv, GraphConfig{})
	warm(t, g, srv)
	srv.Throttle(7, time.Second)
	updates := updatesFor(users)
	results := g.Apply(context.Background(), updates)
	checkConfirmed(t, srv, users, updates, results)
	patches := splitRequests(srv.Requests()).items["PATCH"]
	throttled := 0
	for _, r := range patches {
		if r.Status == 429 {
			throttled++
		}
	}
	if throttled != 7 || len(patches) != 27 || srv.Writes() != 20 {
		t.Errorf("%d PATCH items, %d throttled, %d writes; want 27, 7, 20", len(patches), throttled, srv.Writes())
	}
}

func TestApplyRetriesThrottledBatch(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(5)})
	users := srv.Users()
	g := secretGraph(t, srv, GraphConfig{})
	warm(t, g, srv)
	srv.ThrottleBatches(1, time.Second)
	updates := updatesFor(users)
	results := g.Apply(context.Background(), updates)
	checkConfirmed(t, srv, users, updates, results)
	env := splitRequests(srv.Requests()).envelopes
	if len(env) != 2 || env[0].Status != 429 || env[1].Status != 200 {
		t.Fatalf("$batch requests: %+v; want a 429 then a 200", env)
	}
	// The retried POST must still carry a gzip body with its header.
	if !env[1].GzipBody {
		t.Errorf("the retried $batch went out uncompressed")
	}
}

func TestApplyServiceUnavailableStorm(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(4)})
	users := srv.Users()
	g := secretGraph(t, srv, GraphConfig{MaxAttempts: 3})
	warm(t, g, srv)
	srv.Fail(1000, 503)
	results := g.Apply(context.Background(), updatesFor(users))
	for _, r := range results {
		var e *Error
		if !errors.As(r.Err, &e) || e.Status != 503 || !e.Temporary() || e.Code != "ServiceNotAvailable" || e.Method != "PATCH" {
			t.Errorf("update %s: %v, want a temporary 503 *Error", r.Key, r.Err)
		}
	}
	perUser := map[string]int{}
	for _, r := range splitRequests(srv.Requests()).items["PATCH"] {
		perUser[r.Path]++
	}
	for _, u := range users {
		if n := perUser["/v1.0/users/"+u.ID]; n != 3 {
			t.Errorf("user %s: %d attempts, want MaxAttempts = 3", u.ID, n)
		}
	}
}

func TestApplyRefusals(t *testing.T) {
	users := tenantUsers(4)
	users[1].OnPremisesSyncEnabled = true
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: users})
	users = srv.Users()
	g := secretGraph(t, srv, GraphConfig{})
	warm(t, g, srv)
	updates := updatesFor(users)
	// users[3] claims a value users[0] holds.
	updates[3].Values = []string{users[0].CertificateUserIDs[0]}
	results := g.Apply(context.Background(), updates)
	for i, want := range []string{"", onPremRefusal, "", users[0].CertificateUserIDs[0]} {
		r := results[i]
		if want == "" {
			if r.Err != nil {
				t.Errorf("update %d: %v", i, r.Err)
			}
			continue
		}
		var e *Error
		if !errors.As(r.Err, &e) || e.Status != 400 || e.Code != "Request_BadRequest" || !strings.Contains(e.Message, want) || e.Temporary() {
			t.Errorf("update %d: %v, want Graph's 400 Request_BadRequest naming %q", i, r.Err, want)
		}
		if !strings.Contains(e.Error(), "/users/"+users[i].ID) {
			t.Errorf("update %d: error %q does not name the user", i, e)
		}
	}
	perUser := map[string]int{}
	for _, r := range splitRequests(srv.Requests()).items["PATCH"] {
		perUser[r.Path]++
	}
	for i, u := range users {
		if n := perUser["/v1.0/users/"+u.ID]; n != 1 {
			t.Errorf("user %d: %d PATCH requests, want exactly 1 (refusals are not retried)", i, n)
		}
	}
	if now, _ := srv.User(users[1].ID); len(now.CertificateUserIDs) != 1 {
		t.Errorf("synced user changed: %v", now.CertificateUserIDs)
	}
}

const onPremRefusal = "on-premises mastered Directory Sync objects"

func TestApplyCancelDuringRetryAfter(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(3)})
	users := srv.Users()
	g := secretGraph(t, srv, GraphConfig{})
	warm(t, g, srv)
	cases := []struct {
		name  string
		knobs func()
	}{
		{"item Retry-After", func() { srv.Throttle(1, time.Minute) }},
		{"$batch Retry-After", func() { srv.ThrottleBatches(1, time.Minute) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.knobs()
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			began := time.Now()
			results := g.Apply(ctx, updatesFor(users))
			if d := time.Since(began); d > 20*time.Second {
				t.Errorf("Apply returned %v after the context ended", d)
			}
			canceled := 0
			for _, r := range results {
				if errors.Is(r.Err, context.Canceled) {
					canceled++
				}
			}
			if canceled == 0 {
				t.Errorf("no result reports the cancellation: %+v", results)
			}
			srv.Throttle(0, 0)
			srv.ThrottleBatches(0, 0)
		})
	}
}

func TestApplyItemRetryAfterBeyondMaxWait(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(2)})
	users := srv.Users()
	g := secretGraph(t, srv, GraphConfig{MaxWait: 2 * time.Second})
	warm(t, g, srv)
	srv.Throttle(1, 10*time.Second)
	results := g.Apply(context.Background(), updatesFor(users))
	var e *Error
	if !errors.As(results[0].Err, &e) || e.Status != 429 || !e.Temporary() || e.RetryAfter != 10*time.Second {
		t.Errorf("throttled item: %v, want a temporary 429 with RetryAfter 10s", results[0].Err)
	}
	if results[1].Err != nil {
		t.Errorf("other item: %v", results[1].Err)
	}
}

func TestApplyChecksBeforeSending(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(2)})
	users := srv.Users()
	g := secretGraph(t, srv, GraphConfig{})
	warm(t, g, srv)
	eleven := make([]string, 11)
	for i := range eleven {
		eleven[i] = fmt.Sprintf("X509:<SKI>%02d", i)
	}
	results := g.Apply(context.Background(), []Update{
		{Key: "too-many", AccountID: users[0].ID, Target: TargetCertificateUserIDs, Values: eleven},
		{Key: "too-long", AccountID: users[0].ID, Target: TargetCertificateUserIDs, Values: []string{strings.Repeat("x", 1025)}},
		{Key: "other-target", AccountID: users[0].ID, Target: "exo.userSMimeCertificate", Values: nil},
		{Key: "no-account", Target: TargetCertificateUserIDs},
		{Key: "clear", AccountID: users[1].ID, Target: TargetCertificateUserIDs, Values: nil},
	})
	for _, r := range results[:4] {
		if r.Err == nil || errors.As(r.Err, new(*Error)) {
			t.Errorf("%s: %v, want a refusal before sending", r.Key, r.Err)
		}
	}
	if results[4].Err != nil {
		t.Errorf("clear: %v", results[4].Err)
	}
	if now, _ := srv.User(users[1].ID); len(now.CertificateUserIDs) != 0 {
		t.Errorf("cleared user still holds %v", now.CertificateUserIDs)
	}
	if n := len(splitRequests(srv.Requests()).items["PATCH"]); n != 1 {
		t.Errorf("%d PATCH items sent, want only the valid one", n)
	}
}

func TestTargets(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret})
	g := secretGraph(t, srv, GraphConfig{})
	if got := g.Targets(); len(got) != 1 || got[0] != (Target{Name: TargetCertificateUserIDs, Limit: 10}) {
		t.Errorf("Targets() = %+v", got)
	}
}

// After a failure that will repeat for every $batch (here: no token), the
// batches not yet sent get the same error instead of asking again.
func TestApplyStopsAfterFatalError(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(45)})
	cred, err := NewCredential(CredentialConfig{Method: MethodSecret, TenantID: srv.TenantID(), ClientID: srv.ClientID(),
		Secret: "wrong", AuthorityHost: srv.URL(), RootCAs: srv.RootCAs()})
	if err != nil {
		t.Fatal(err)
	}
	g := graphFor(t, srv, GraphConfig{Credential: cred, Concurrency: 1})
	results := g.Apply(context.Background(), updatesFor(srv.Users()))
	if len(results) != 45 {
		t.Fatalf("%d results for 45 updates", len(results))
	}
	for _, r := range results {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "AADSTS7000215") {
			t.Errorf("update %s: %v, want the token endpoint's refusal", r.Key, r.Err)
		}
	}
	tokenPosts := 0
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, "/oauth2/v2.0/token") {
			tokenPosts++
		}
	}
	// Three batches; only the first asks for a token.
	if tokenPosts != 1 || srv.Writes() != 0 {
		t.Errorf("%d token requests, %d writes; want 1, 0", tokenPosts, srv.Writes())
	}
}
