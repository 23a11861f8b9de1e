package cloudsink

import (
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping/pkitest"
)

func TestLookup45Users(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(45)})
	users := srv.Users()
	g := secretGraph(t, srv, GraphConfig{})
	cases := []struct {
		property string
		value    func(graphtest.User) string
		items    int // $batch items for 45 lookups
	}{
		{"onPremisesImmutableId", func(u graphtest.User) string { return u.OnPremisesImmutableID }, 3},
		{"mail", func(u graphtest.User) string { return strings.ToLower(u.Mail) }, 3},
		{"userPrincipalName", func(u graphtest.User) string { return strings.ToUpper(u.UserPrincipalName) }, 3},
		{"id", func(u graphtest.User) string { return u.ID }, 45},
	}
	for _, c := range cases {
		t.Run(c.property, func(t *testing.T) {
			srv.ResetRequests()
			var lookups []Lookup
			for _, u := range users {
				lookups = append(lookups, Lookup{Key: "anchor-" + u.ID, Property: c.property, Value: c.value(u)})
			}
			got, err := g.Lookup(context.Background(), lookups)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(users) {
				t.Fatalf("%d results for %d lookups", len(got), len(users))
			}
			for _, u := range users {
				res := got["anchor-"+u.ID]
				if res.Err != nil || res.Account == nil {
					t.Fatalf("user %s (%s): %v", u.ID, c.value(u), res.Err)
				}
				a := res.Account
				if a.ID != u.ID || a.UserPrincipalName != u.UserPrincipalName || a.Mail != u.Mail || a.Refusal != "" {
					t.Errorf("user %s: account %+v", u.ID, a)
				}
				if !slices.Equal(a.Values[TargetCertificateUserIDs], u.CertificateUserIDs) {
					t.Errorf("user %s: values %v, want %v", u.ID, a.Values[TargetCertificateUserIDs], u.CertificateUserIDs)
				}
			}
			reqs := splitRequests(srv.Requests())
			if len(reqs.direct) != 0 {
				t.Errorf("%d Graph requests outside $batch: %+v", len(reqs.direct), reqs.direct)
			}
			if n := len(reqs.items["GET"]); n != c.items {
				t.Errorf("%d $batch items, want %d", n, c.items)
			}
			if want := (c.items + 19) / 20; len(reqs.envelopes) != want {
				t.Errorf("%d $batch requests, want %d", len(reqs.envelopes), want)
			}
			for id, n := range reqs.perBatch {
				if n > 20 {
					t.Errorf("%s carried %d items", id, n)
				}
			}
		})
	}
}

func TestLookupOutcomes(t *testing.T) {
	users := tenantUsers(3)
	users = append(users,
		graphtest.User{UserPrincipalName: "twin1@contoso.example", Mail: "shared@contoso.example"},
		graphtest.User{UserPrincipalName: "twin2@contoso.example", Mail: "Shared@Contoso.Example"},
		graphtest.User{UserPrincipalName: "synced@contoso.example", OnPremisesImmutableID: "c3luY2VkLXVzZXItMDAwMQ==", OnPremisesSyncEnabled: true,
			CertificateUserIDs: []string{"X509:<SKI>from-ad"}},
	)
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: users})
	all := srv.Users()
	g := secretGraph(t, srv, GraphConfig{})
	srv.ResetRequests()
	got, err := g.Lookup(context.Background(), []Lookup{
		{Key: "found", Property: "mail", Value: strings.ToUpper(all[1].Mail)},
		{Key: "same-again", Property: "mail", Value: all[1].Mail},
		{Key: "missing-mail", Property: "mail", Value: "nobody@contoso.example"},
		{Key: "missing-immutable", Property: "onPremisesImmutableId", Value: "bm9ib2R5LWF0LWFsbC0wMQ=="},
		{Key: "immutable-case", Property: "onPremisesImmutableId", Value: strings.ToLower(all[0].OnPremisesImmutableID)},
		{Key: "missing-id", Property: "id", Value: "00000000-0000-4000-8000-000000000000"},
		{Key: "upn-as-id", Property: "id", Value: all[2].UserPrincipalName},
		{Key: "twins", Property: "mail", Value: "SHARED@contoso.example"},
		{Key: "synced", Property: "onPremisesImmutableId", Value: "c3luY2VkLXVzZXItMDAwMQ=="},
		{Key: "bad-property", Property: "displayName", Value: "x"},
		{Key: "empty", Property: "mail", Value: ""},
		{Key: "too-long", Property: "mail", Value: strings.Repeat("x", 121) + "@contoso.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]error{
		"missing-mail":      ErrNotFound,
		"missing-immutable": ErrNotFound,
		"immutable-case":    ErrNotFound,
		"missing-id":        ErrNotFound,
		"upn-as-id":         ErrNotFound,
		"twins":             ErrAmbiguous,
	}
	for key, w := range want {
		if !errors.Is(got[key].Err, w) || got[key].Account != nil {
			t.Errorf("%s: %+v, want %v", key, got[key], w)
		}
	}
	for _, key := range []string{"found", "same-again"} {
		if got[key].Err != nil || got[key].Account.ID != all[1].ID {
			t.Errorf("%s: %+v", key, got[key])
		}
	}
	if got["found"].Account == got["same-again"].Account {
		t.Errorf("two keys share one *Account")
	}
	syn := got["synced"]
	if syn.Err != nil || syn.Account.Refusal != RefusalSynced || !slices.Equal(syn.Account.Values[TargetCertificateUserIDs], []string{"X509:<SKI>from-ad"}) {
		t.Errorf("synced: %+v %+v", syn, syn.Account)
	}
	for _, key := range []string{"bad-property", "empty", "too-long"} {
		if got[key].Err == nil || errors.Is(got[key].Err, ErrNotFound) {
			t.Errorf("%s: %+v, want a refusal before asking Graph", key, got[key])
		}
	}
	for _, r := range srv.Requests() {
		if r.InBatch && strings.Contains(r.Query, "xxxxxxxx") {
			t.Errorf("an over-long value was sent: %s", r.Query)
		}
	}
}

func TestLookupRetriesThrottledItems(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(30)})
	users := srv.Users()
	g := secretGraph(t, srv, GraphConfig{})
	var lookups []Lookup
	for _, u := range users {
		lookups = append(lookups, Lookup{Key: u.ID, Property: "id", Value: u.ID})
	}
	if _, err := g.Lookup(context.Background(), lookups[:1]); err != nil { // token first
		t.Fatal(err)
	}
	srv.ResetRequests()
	srv.Throttle(5, time.Second)
	got, err := g.Lookup(context.Background(), lookups)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if got[u.ID].Err != nil || got[u.ID].Account.ID != u.ID {
			t.Errorf("%s: %+v", u.ID, got[u.ID])
		}
	}
	items := splitRequests(srv.Requests()).items["GET"]
	throttled := 0
	for _, r := range items {
		if r.Status == 429 {
			throttled++
		}
	}
	if throttled != 5 || len(items) != 35 {
		t.Errorf("%d items, %d throttled; want 35 and 5", len(items), throttled)
	}
}

func TestLookupWholeCallFailures(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(2)})
	lookups := []Lookup{{Key: "k", Property: "mail", Value: "user00@contoso.example"}}

	t.Run("token refused", func(t *testing.T) {
		cred, err := NewCredential(CredentialConfig{Method: MethodSecret, TenantID: srv.TenantID(), ClientID: srv.ClientID(),
			Secret: "wrong", AuthorityHost: srv.URL(), RootCAs: srv.RootCAs()})
		if err != nil {
			t.Fatal(err)
		}
		g := graphFor(t, srv, GraphConfig{Credential: cred})
		got, err := g.Lookup(context.Background(), lookups)
		if err == nil || got != nil || !strings.Contains(err.Error(), "AADSTS7000215") {
			t.Fatalf("Lookup = %v, %v; want the token endpoint's refusal", got, err)
		}
	})
	t.Run("Graph unreachable", func(t *testing.T) {
		// The token comes from srv; Graph is another emulator, closed.
		gone := startEmulator(t, graphtest.Options{})
		g := graphFor(t, gone, GraphConfig{Credential: secretCredential(t, srv)})
		if err := gone.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := g.Lookup(context.Background(), lookups)
		if err == nil || got != nil {
			t.Fatalf("Lookup = %v, %v; want an error", got, err)
		}
	})
	t.Run("Graph refuses the token", func(t *testing.T) {
		g := secretGraph(t, srv, GraphConfig{})
		if _, err := g.Lookup(context.Background(), lookups); err != nil {
			t.Fatal(err)
		}
		srv.ExpireTokens() // azidentity keeps its cached token
		_, err := g.Lookup(context.Background(), lookups)
		var e *Error
		if !errors.As(err, &e) || e.Status != 401 || e.Code != "InvalidAuthenticationToken" {
			t.Fatalf("Lookup error %v, want Graph's 401 as *Error", err)
		}
	})
	t.Run("outer 429 beyond MaxWait", func(t *testing.T) {
		g := secretGraph(t, srv, GraphConfig{MaxWait: time.Second})
		srv.ThrottleBatches(1, 5*time.Second)
		_, err := g.Lookup(context.Background(), lookups)
		var e *Error
		if !errors.As(err, &e) || e.Status != 429 || !e.Temporary() || e.RetryAfter != 5*time.Second {
			t.Fatalf("Lookup error %v, want a temporary 429 with RetryAfter 5s", err)
		}
	})
}

func TestLookupWithClientCertificate(t *testing.T) {
	ca, err := pkitest.NewRootCA("client certificates")
	if err != nil {
		t.Fatal(err)
	}
	registered, pemRegistered := clientCert(t, ca, "certsync app")
	_, pemStranger := clientCert(t, ca, "stranger")
	// No secret: the certificate is the only way in.
	srv := startEmulator(t, graphtest.Options{ClientCertificates: []*x509.Certificate{registered}, Users: tenantUsers(3)})
	u := srv.Users()[2]
	cases := []struct {
		name string
		pem  []byte
		ok   bool
	}{
		{"registered certificate", pemRegistered, true},
		{"unregistered certificate", pemStranger, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cred, err := NewCredential(CredentialConfig{Method: MethodCertificate, TenantID: srv.TenantID(), ClientID: srv.ClientID(),
				CertificatePEM: c.pem, AuthorityHost: srv.URL(), RootCAs: srv.RootCAs()})
			if err != nil {
				t.Fatal(err)
			}
			g := graphFor(t, srv, GraphConfig{Credential: cred})
			got, err := g.Lookup(context.Background(), []Lookup{{Key: "k", Property: "onPremisesImmutableId", Value: u.OnPremisesImmutableID}})
			if !c.ok {
				if err == nil || !strings.Contains(err.Error(), "AADSTS700027") {
					t.Fatalf("Lookup = %v, %v; want the certificate refused", got, err)
				}
				return
			}
			if err != nil || got["k"].Err != nil || got["k"].Account.ID != u.ID {
				t.Fatalf("Lookup = %+v, %v", got, err)
			}
		})
	}
}
