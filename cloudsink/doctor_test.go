package cloudsink

import (
	"context"
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/cloudsink/exotest"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping/pkitest"
)

// closedURL is an https URL on a loopback port nobody listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "https://" + addr
}

func TestDiagnose(t *testing.T) {
	type want struct {
		status string
		detail string // substring of Detail, "" = any
		fix    string // substring of Fix, "" = any (Fix must be set when not ok)
	}
	allGood := map[string]want{
		"token graph":         {CheckOK, "app ", ""},
		"graph permission":    {CheckOK, "User.ReadWrite.All", ""},
		"graph role":          {CheckOK, "Privileged Authentication Administrator", ""},
		"graph read":          {CheckOK, "read 1 user(s)", ""},
		"token exchange":      {CheckOK, "https://outlook.office365.com/.default", ""},
		"exchange permission": {CheckOK, "Exchange.ManageAsApp", ""},
		"exchange role":       {CheckOK, "Exchange Administrator", ""},
		"exchange read":       {CheckOK, "returned 1 mailbox(es)", ""},
	}
	with := func(over map[string]want) map[string]want {
		out := map[string]want{}
		for k, v := range allGood {
			out[k] = v
		}
		for k, v := range over {
			out[k] = v
		}
		return out
	}
	cases := []struct {
		name     string
		opts     graphtest.Options
		exoRoles []string
		secret   string // "" = the right one
		tenant   string // "" = the emulator's
		clientID string // "" = the emulator's
		closed   bool   // Graph endpoint on a closed port
		want     map[string]want
	}{
		{name: "all good", want: allGood},
		{name: "wrong secret", secret: "not-the-secret", want: map[string]want{
			"token graph":         {CheckFail, "AADSTS7000215", "client secret"},
			"graph permission":    {CheckSkip, "", ""},
			"graph role":          {CheckSkip, "", ""},
			"graph read":          {CheckSkip, "", ""},
			"token exchange":      {CheckFail, "AADSTS7000215", "client secret"},
			"exchange permission": {CheckSkip, "", ""},
			"exchange role":       {CheckSkip, "", ""},
			"exchange read":       {CheckSkip, "", ""},
		}},
		{name: "unknown tenant", tenant: "00000000-0000-4000-8000-000000000000", want: map[string]want{
			"token graph":         {CheckFail, "AADSTS90002", "cloud.tenantId"},
			"graph permission":    {CheckSkip, "", ""},
			"graph role":          {CheckSkip, "", ""},
			"graph read":          {CheckSkip, "", ""},
			"token exchange":      {CheckFail, "AADSTS90002", "cloud.tenantId"},
			"exchange permission": {CheckSkip, "", ""},
			"exchange role":       {CheckSkip, "", ""},
			"exchange read":       {CheckSkip, "", ""},
		}},
		{name: "unknown app", clientID: "11111111-2222-4333-8444-555555555555", want: map[string]want{
			"token graph":         {CheckFail, "AADSTS700016", "cloud.clientId"},
			"graph permission":    {CheckSkip, "", ""},
			"graph role":          {CheckSkip, "", ""},
			"graph read":          {CheckSkip, "", ""},
			"token exchange":      {CheckFail, "AADSTS700016", "cloud.clientId"},
			"exchange permission": {CheckSkip, "", ""},
			"exchange role":       {CheckSkip, "", ""},
			"exchange read":       {CheckSkip, "", ""},
		}},
		{name: "read-only Graph permission", opts: graphtest.Options{Roles: []string{"User.Read.All"}}, want: with(map[string]want{
			"graph permission": {CheckFail, "User.ReadWrite.All is not granted (the token's roles: User.Read.All)", "User.ReadWrite.All"},
		})},
		{name: "no Graph permission", opts: graphtest.Options{Roles: []string{}}, want: with(map[string]want{
			"graph permission": {CheckFail, "User.ReadWrite.All is not granted (the token's roles: none)", "Grant admin consent"},
			"graph read":       {CheckFail, "403 Authorization_RequestDenied", "User.ReadWrite.All"},
		})},
		{name: "no wids", opts: graphtest.Options{DirectoryRoles: []string{}}, want: with(map[string]want{
			"graph role":    {CheckWarn, "cannot tell", "Privileged Authentication Administrator"},
			"exchange role": {CheckWarn, "cannot tell", "Exchange Administrator"},
		})},
		{name: "other directory roles only", opts: graphtest.Options{DirectoryRoles: []string{"fe930be7-5e62-47db-91af-98c3a49a38b1"}}, want: with(map[string]want{
			"graph role":    {CheckWarn, "no tenant-wide Privileged Authentication Administrator", "Add assignments"},
			"exchange role": {CheckWarn, "no tenant-wide Exchange Administrator", "custom Exchange role"},
		})},
		{name: "Global Administrator", opts: graphtest.Options{DirectoryRoles: []string{graphtest.RoleGlobalAdministrator}}, want: with(map[string]want{
			"graph role":    {CheckOK, "Global Administrator", ""},
			"exchange role": {CheckOK, "Global Administrator", ""},
		})},
		{name: "Exchange without ManageAsApp", exoRoles: []string{}, want: with(map[string]want{
			"exchange permission": {CheckFail, "Exchange.ManageAsApp is not granted", "Office 365 Exchange Online"},
			"exchange read":       {CheckFail, "401 InvalidAuthenticationToken", "Exchange.ManageAsApp"},
		})},
		{name: "Graph unreachable", closed: true, want: with(map[string]want{
			"graph read": {CheckFail, "connection refused", "127.0.0.1:"},
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := c.opts
			opts.ClientSecret = testSecret
			opts.Users = tenantUsers(1)
			g := startEmulator(t, opts)
			exo, err := exotest.Mount(g, exotest.Options{Roles: c.exoRoles, Logger: zaptest.NewLogger(t).Named("exchange-emulator"),
				Mailboxes: []exotest.Mailbox{{UserPrincipalName: "ada@contoso.example"}}})
			if err != nil {
				t.Fatal(err)
			}
			secret, tenant, clientID := testSecret, g.TenantID(), g.ClientID()
			if c.secret != "" {
				secret = c.secret
			}
			if c.tenant != "" {
				tenant = c.tenant
			}
			if c.clientID != "" {
				clientID = c.clientID
			}
			cred, err := NewCredential(CredentialConfig{Method: MethodSecret, TenantID: tenant, ClientID: clientID, Secret: secret,
				AuthorityHost: g.URL(), RootCAs: g.RootCAs()})
			if err != nil {
				t.Fatal(err)
			}
			graphURL := g.URL()
			if c.closed {
				graphURL = closedURL(t)
			}
			checks := Diagnose(context.Background(), DoctorConfig{
				Credential: cred, GraphEndpoint: graphURL, ExchangeEndpoint: exo.URL(), AuthorityHost: g.URL(),
				TenantID: tenant, RootCAs: g.RootCAs(), Graph: true, Exchange: true,
			}, zaptest.NewLogger(t))
			order := []string{"token graph", "graph permission", "graph role", "graph read", "token exchange", "exchange permission", "exchange role", "exchange read"}
			if len(checks) != len(order) {
				t.Fatalf("%d checks, want %d: %+v", len(checks), len(order), checks)
			}
			for i, ck := range checks {
				t.Logf("%-20s %-4s %s | %s", ck.Name, ck.Status, ck.Detail, ck.Fix)
				if ck.Name != order[i] {
					t.Errorf("check %d is %q, want %q", i, ck.Name, order[i])
				}
				w := c.want[ck.Name]
				if ck.Status != w.status {
					t.Errorf("%s: status %s, want %s (%s)", ck.Name, ck.Status, w.status, ck.Detail)
				}
				if !strings.Contains(ck.Detail, w.detail) {
					t.Errorf("%s: detail %q lacks %q", ck.Name, ck.Detail, w.detail)
				}
				if !strings.Contains(ck.Fix, w.fix) {
					t.Errorf("%s: fix %q lacks %q", ck.Name, ck.Fix, w.fix)
				}
				if (ck.Status == CheckFail || ck.Status == CheckWarn) && ck.Fix == "" {
					t.Errorf("%s: %s without a fix", ck.Name, ck.Status)
				}
				if ck.Status == CheckOK && ck.Fix != "" {
					t.Errorf("%s: ok with a fix %q", ck.Name, ck.Fix)
				}
				// No secret and no token (a JWT's base64 starts "eyJ").
				for _, text := range []string{ck.Detail, ck.Fix} {
					if strings.Contains(text, secret) || strings.Contains(text, "eyJ") {
						t.Errorf("%s: a secret or token in %q", ck.Name, text)
					}
				}
			}
		})
	}
}

// TestDiagnoseUntrustedAuthority: a credential that does not trust the
// authority's certificate fails the token check with TLS named, and
// Diagnose only runs the enabled target.
func TestDiagnoseUntrustedAuthority(t *testing.T) {
	g := startEmulator(t, graphtest.Options{ClientSecret: testSecret})
	cred, err := NewCredential(CredentialConfig{Method: MethodSecret, TenantID: g.TenantID(), ClientID: g.ClientID(), Secret: testSecret,
		AuthorityHost: g.URL()}) // no RootCAs: the system's trust, which lacks the test CA
	if err != nil {
		t.Fatal(err)
	}
	checks := Diagnose(context.Background(), DoctorConfig{Credential: cred, GraphEndpoint: g.URL(), AuthorityHost: g.URL(),
		TenantID: g.TenantID(), RootCAs: g.RootCAs(), Graph: true}, zaptest.NewLogger(t))
	if len(checks) != 4 {
		t.Fatalf("%d checks, want the 4 of Graph: %+v", len(checks), checks)
	}
	tc := checks[0]
	host := strings.TrimPrefix(g.URL(), "https://")
	if tc.Name != "token graph" || tc.Status != CheckFail || !strings.Contains(tc.Detail, "TLS to "+host) || !strings.Contains(tc.Fix, "trust store") {
		t.Errorf("token check %+v, want a TLS failure naming %s", tc, host)
	}
	for _, ck := range checks[1:] {
		if ck.Status != CheckSkip {
			t.Errorf("%s: %s, want skip after a failed token", ck.Name, ck.Status)
		}
	}
}

func TestDecodeClaims(t *testing.T) {
	cases := []struct {
		name     string
		token    string
		appID    string
		roles    []string
		hasWids  bool
		wantFail bool
	}{
		// {"alg":"none"}.{"appid":"a","roles":["R"],"wids":[]}.sig
		{"v1 with wids", "eyJhbGciOiJub25lIn0.eyJhcHBpZCI6ImEiLCJyb2xlcyI6WyJSIl0sIndpZHMiOltdfQ.c2ln", "a", []string{"R"}, true, false},
		// {"alg":"none"}.{"azp":"b"}.sig
		{"v2 without wids", "eyJhbGciOiJub25lIn0.eyJhenAiOiJiIn0.c2ln", "b", nil, false, false},
		{"opaque", "0123456789abcdef", "", nil, false, true},
		{"payload not base64", "a.!!!.c", "", nil, false, true},
		{"payload not JSON", "a.bm90IGpzb24.c", "", nil, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeClaims(c.token)
			if (err != nil) != c.wantFail {
				t.Fatalf("err %v, want failure %v", err, c.wantFail)
			}
			if c.wantFail {
				return
			}
			if got.AppID != c.appID || strings.Join(got.Roles, ",") != strings.Join(c.roles, ",") || got.hasW != c.hasWids {
				t.Errorf("got %+v", got)
			}
		})
	}
}

// The doctor's check of Exchange's trusted-CA collection against the
// CA file.
func TestDiagnoseExchangeTrust(t *testing.T) {
	cas := sstCAs(t)
	ca, err := pkitest.NewRootCA("doctor expired")
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := ca.Issue(pkitest.LeafOptions{CommonName: "gone", NotBefore: time.Now().AddDate(-3, 0, 0), NotAfter: time.Now().AddDate(-2, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		held   []byte
		cas    []*x509.Certificate
		keep   bool
		status string
		detail string
	}{
		{"not set", nil, cas, false, CheckWarn, "is empty"},
		{"lacks the issuing CA", WriteSST([][]byte{cas[0].Raw}), cas, false, CheckWarn, "lacks 1 of the 2"},
		{"holds both, exported by Windows", windowsSST(cas[1], cas[0]), cas, false, CheckOK, "holds the 2 CAs"},
		{"holds them and more", WriteSST([][]byte{cas[0].Raw, cas[1].Raw, expired.Raw}), cas, false, CheckOK, "3 certificates in all"},
		{"unreadable store", []byte("garbage"), cas, false, CheckFail, "not a serialized certificate store"},
		{"kept, but a CA expired", nil, append(slices.Clone(cas), expired), true, CheckFail, "expired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := startExchange(t, nil, ExchangeConfig{})
			env.exo.SetSmimeIssuingCA(tt.held)
			checks := Diagnose(context.Background(), DoctorConfig{
				Credential: secretCredential(t, env.g), ExchangeEndpoint: env.exo.URL(), AuthorityHost: env.g.URL(),
				TenantID: env.exo.TenantID(), RootCAs: env.g.RootCAs(), Exchange: true, IssuingCAs: tt.cas, SmimeIssuingCAs: tt.keep,
			}, zaptest.NewLogger(t))
			last := checks[len(checks)-1]
			if last.Name != "exchange trust" || last.Status != tt.status || !strings.Contains(last.Detail, tt.detail) || (tt.status != CheckOK && last.Fix == "") {
				t.Errorf("got %+v; want %s saying %q, with a fix", last, tt.status, tt.detail)
			}
		})
	}
}
