package cloudsink

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/cloudsink/exotest"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping/pkitest"
)

// exoEnv is one HTTPS server with the authority, Graph and Exchange, and a
// real client-secret credential against it.
type exoEnv struct {
	g   *graphtest.Server
	exo *exotest.Server
	x   *Exchange
}

func startExchange(t *testing.T, mailboxes []exotest.Mailbox, cfg ExchangeConfig) exoEnv {
	t.Helper()
	g := startEmulator(t, graphtest.Options{ClientSecret: testSecret})
	exo, err := exotest.Mount(g, exotest.Options{Mailboxes: mailboxes, Logger: zaptest.NewLogger(t).Named("exchange-emulator")})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credential = secretCredential(t, g)
	cfg.Endpoint = exo.URL()
	cfg.RootCAs = g.RootCAs()
	if cfg.TenantID == "" {
		cfg.TenantID = exo.TenantID()
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = 10 * time.Millisecond
	}
	x, err := NewExchange(cfg, zaptest.NewLogger(t).Named("exchange"))
	if err != nil {
		t.Fatal(err)
	}
	return exoEnv{g: g, exo: exo, x: x}
}

// testCerts issues n distinct DER certificates.
func testCerts(t *testing.T, n int) [][]byte {
	t.Helper()
	ca, err := pkitest.NewRootCA("certsync exchange test CA")
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range out {
		c, _, err := ca.Issue(pkitest.LeafOptions{CommonName: fmt.Sprintf("user %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = c.Raw
	}
	return out
}

func b64(ders ...[]byte) []string {
	out := make([]string, len(ders))
	for i, d := range ders {
		out[i] = base64.StdEncoding.EncodeToString(d)
	}
	return out
}

func mailboxes(certs [][]byte) []exotest.Mailbox {
	return []exotest.Mailbox{
		{UserPrincipalName: "ada@contoso.example", ExternalDirectoryObjectID: "11111111-1111-4111-8111-111111111111",
			UserCertificate: certs[0:1], UserSMimeCertificate: certs[1:2]},
		{UserPrincipalName: "bob@contoso.example", PrimarySmtpAddress: "Bob.Builder@Contoso.Example", ExternalDirectoryObjectID: "22222222-2222-4222-8222-222222222222"},
		{UserPrincipalName: "synced@contoso.example", ExternalDirectoryObjectID: "33333333-3333-4333-8333-333333333333", IsDirSynced: true,
			UserCertificate: certs[2:3]},
	}
}

func TestExchangeLookup(t *testing.T) {
	certs := testCerts(t, 3)
	env := startExchange(t, mailboxes(certs), ExchangeConfig{Concurrency: 2})
	cases := []struct {
		name     string
		lookup   Lookup
		wantID   string
		wantErr  error
		refusal  bool
		userCert []string
		smime    []string
	}{
		{"by upn", Lookup{Property: "userPrincipalName", Value: "ADA@contoso.example"}, "11111111-1111-4111-8111-111111111111", nil, false, b64(certs[0]), b64(certs[1])},
		{"by mail", Lookup{Property: "mail", Value: "bob.builder@contoso.example"}, "22222222-2222-4222-8222-222222222222", nil, false, []string{}, []string{}},
		{"by id", Lookup{Property: "id", Value: "11111111-1111-4111-8111-111111111111"}, "11111111-1111-4111-8111-111111111111", nil, false, b64(certs[0]), b64(certs[1])},
		{"synced", Lookup{Property: "userPrincipalName", Value: "synced@contoso.example"}, "33333333-3333-4333-8333-333333333333", nil, true, b64(certs[2]), []string{}},
		{"missing", Lookup{Property: "mail", Value: "nobody@contoso.example"}, "", ErrNotFound, false, nil, nil},
		{"id that is an alias", Lookup{Property: "id", Value: "ada"}, "", ErrNotFound, false, nil, nil},
	}
	var lookups []Lookup
	for _, c := range cases {
		l := c.lookup
		l.Key = c.name
		lookups = append(lookups, l)
	}
	lookups = append(lookups, Lookup{Key: "bad property", Property: "onPremisesImmutableId", Value: "x"})
	got, err := env.x.Lookup(context.Background(), lookups)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := got[c.name]
			if c.wantErr != nil {
				if !errors.Is(res.Err, c.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, c.wantErr)
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			a := res.Account
			if a.ID != c.wantID || (a.Refusal != "") != c.refusal {
				t.Errorf("account %+v: want ID %s, refusal %v", a, c.wantID, c.refusal)
			}
			if !slices.Equal(a.Values[TargetUserCertificate], c.userCert) || !slices.Equal(a.Values[TargetUserSMimeCertificate], c.smime) {
				t.Errorf("values %v, want %v / %v", a.Values, c.userCert, c.smime)
			}
		})
	}
	if e := got["bad property"].Err; e == nil || !strings.Contains(e.Error(), "onPremisesImmutableId") {
		t.Errorf("bad property: %v, want an error naming it", e)
	}
	for _, r := range env.exo.Requests() {
		if !strings.HasPrefix(r.Anchor, "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@") || (r.Cmdlet != "Get-Mailbox" && r.Cmdlet != "Get-MailUser") {
			t.Errorf("request %+v: want Get-Mailbox or Get-MailUser with the system mailbox anchor", r)
		}
	}
}

func TestExchangeApply(t *testing.T) {
	certs := testCerts(t, 20)
	const ada, bob, synced = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333"
	cases := []struct {
		name      string
		updates   []Update
		wantCalls int
		wantErrs  []string // per update: "" = confirmed, else a substring of the error
		check     func(t *testing.T, exo *exotest.Server)
	}{
		{"add", []Update{{Key: "a", AccountID: bob, Target: TargetUserSMimeCertificate, Values: b64(certs[5])}}, 1, []string{""},
			func(t *testing.T, exo *exotest.Server) { wantValues(t, exo, bob, nil, certs[5:6]) }},
		{"replace", []Update{{Key: "a", AccountID: ada, Target: TargetUserCertificate, Values: b64(certs[6], certs[7])}}, 1, []string{""},
			func(t *testing.T, exo *exotest.Server) { wantValues(t, exo, ada, certs[6:8], certs[1:2]) }},
		{"clear", []Update{{Key: "a", AccountID: ada, Target: TargetUserSMimeCertificate, Values: []string{}}}, 1, []string{""},
			func(t *testing.T, exo *exotest.Server) { wantValues(t, exo, ada, certs[0:1], nil) }},
		{"both targets in one call", []Update{
			{Key: "a", AccountID: ada, Target: TargetUserCertificate, Values: b64(certs[8])},
			{Key: "a", AccountID: ada, Target: TargetUserSMimeCertificate, Values: b64(certs[9], certs[10])},
		}, 1, []string{"", ""},
			func(t *testing.T, exo *exotest.Server) { wantValues(t, exo, ada, certs[8:9], certs[9:11]) }},
		{"per-user refusals do not stop others", []Update{
			{Key: "s", AccountID: synced, Target: TargetUserCertificate, Values: b64(certs[11])},
			{Key: "m", AccountID: "44444444-4444-4444-8444-444444444444", Target: TargetUserCertificate, Values: b64(certs[12])},
			{Key: "b", AccountID: bob, Target: TargetUserCertificate, Values: b64(certs[13])},
		}, 3, []string{"write scope", exoNotFound, ""},
			func(t *testing.T, exo *exotest.Server) { wantValues(t, exo, bob, certs[13:14], nil) }},
		{"more than 15 refused locally", []Update{{Key: "a", AccountID: ada, Target: TargetUserCertificate, Values: b64(certs[0:16]...)}}, 0, []string{"at most 15"}, nil},
		{"not base64 refused locally", []Update{{Key: "a", AccountID: ada, Target: TargetUserCertificate, Values: []string{"X509:<SKI>00"}}}, 0, []string{"base64"}, nil},
		{"unknown target", []Update{{Key: "a", AccountID: ada, Target: TargetCertificateUserIDs, Values: nil}}, 0, []string{"not one the Exchange sink writes"}, nil},
		{"emulator rejects a non-certificate", []Update{{Key: "a", AccountID: bob, Target: TargetUserCertificate, Values: []string{base64.StdEncoding.EncodeToString([]byte("not a certificate"))}}}, 1, []string{"is neither an X.509 certificate"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := startExchange(t, mailboxes(certs), ExchangeConfig{})
			results := env.x.Apply(context.Background(), c.updates)
			if len(results) != len(c.updates) {
				t.Fatalf("%d results for %d updates", len(results), len(c.updates))
			}
			for i, r := range results {
				if r.Key != c.updates[i].Key || r.Target != c.updates[i].Target {
					t.Errorf("result %d is for %s/%s", i, r.Key, r.Target)
				}
				switch want := c.wantErrs[i]; {
				case want == "" && r.Err != nil:
					t.Errorf("update %d: %v", i, r.Err)
				case want != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), want)):
					t.Errorf("update %d: err %v, want one containing %q", i, r.Err, want)
				}
			}
			if n := len(env.exo.Requests()); n != c.wantCalls {
				t.Errorf("%d InvokeCommand calls, want %d", n, c.wantCalls)
			}
			if c.check != nil {
				c.check(t, env.exo)
			}
		})
	}
}

func wantValues(t *testing.T, exo *exotest.Server, id string, userCert, smime [][]byte) {
	t.Helper()
	m, ok := exo.Mailbox(id)
	if !ok {
		t.Fatalf("no mailbox %s", id)
	}
	eq := func(a, b [][]byte) bool {
		return slices.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
	}
	if !eq(m.UserCertificate, userCert) || !eq(m.UserSMimeCertificate, smime) {
		t.Errorf("mailbox %s holds %d/%d certificates, not the %d/%d expected", id, len(m.UserCertificate), len(m.UserSMimeCertificate), len(userCert), len(smime))
	}
}

// A 429 storm delays the pass but loses nothing.
func TestExchangeThrottleStorm(t *testing.T) {
	certs := testCerts(t, 12)
	var mbs []exotest.Mailbox
	var updates []Update
	for i := range 12 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		mbs = append(mbs, exotest.Mailbox{UserPrincipalName: fmt.Sprintf("u%d@contoso.example", i), ExternalDirectoryObjectID: id})
		updates = append(updates, Update{Key: id, AccountID: id, Target: TargetUserSMimeCertificate, Values: b64(certs[i])})
	}
	env := startExchange(t, mbs, ExchangeConfig{Concurrency: 3, MaxAttempts: 8})
	env.exo.Throttle(10, time.Second)
	results := env.x.Apply(context.Background(), updates)
	for i, r := range results {
		if r.Err != nil {
			t.Errorf("update %d: %v", i, r.Err)
		}
	}
	throttled := 0
	for _, r := range env.exo.Requests() {
		if r.Status == 429 {
			throttled++
		}
	}
	if throttled != 10 || env.exo.Writes() != 12 {
		t.Errorf("%d throttled, %d writes; want 10, 12", throttled, env.exo.Writes())
	}
	for i, id := range updates {
		wantValues(t, env.exo, id.AccountID, nil, certs[i:i+1])
	}
}

// Beyond MaxAttempts, or with a Retry-After beyond MaxWait, the item fails
// as temporary, with the wait Exchange asked for.
func TestExchangeThrottleGivesUp(t *testing.T) {
	certs := testCerts(t, 1)
	const id = "11111111-1111-4111-8111-111111111111"
	for _, c := range []struct {
		name string
		cfg  ExchangeConfig
		wait time.Duration
		sent int
	}{
		{"attempts", ExchangeConfig{MaxAttempts: 2}, time.Second, 2},
		{"max wait", ExchangeConfig{MaxWait: time.Second}, time.Minute, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := startExchange(t, []exotest.Mailbox{{UserPrincipalName: "a@contoso.example", ExternalDirectoryObjectID: id}}, c.cfg)
			env.exo.Throttle(100, c.wait)
			r := env.x.Apply(context.Background(), []Update{{Key: "k", AccountID: id, Target: TargetUserCertificate, Values: b64(certs[0])}})
			var e *Error
			if !errors.As(r[0].Err, &e) || !e.Temporary() || e.RetryAfter != c.wait || e.Service != "exchange" {
				t.Fatalf("err %v, want a temporary exchange *Error with RetryAfter %s", r[0].Err, c.wait)
			}
			if n := len(env.exo.Requests()); n != c.sent {
				t.Errorf("%d requests, want %d", n, c.sent)
			}
		})
	}
}

// A token for Graph does not open Exchange, and a broken credential fails
// the whole lookup rather than reading as "no mailbox".
func TestExchangeWholeCallFailures(t *testing.T) {
	env := startExchange(t, nil, ExchangeConfig{})
	x := *env.x
	x.scope = "https://graph.microsoft.com/.default"
	if _, err := x.Lookup(context.Background(), []Lookup{{Key: "k", Property: "mail", Value: "a@contoso.example"}}); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("Graph token: %v, want a whole-call error about the audience", err)
	}
	bad, err := NewCredential(CredentialConfig{Method: MethodSecret, TenantID: env.g.TenantID(), ClientID: env.g.ClientID(), Secret: "wrong", AuthorityHost: env.g.URL(), RootCAs: env.g.RootCAs()})
	if err != nil {
		t.Fatal(err)
	}
	x2, err := NewExchange(ExchangeConfig{TenantID: env.exo.TenantID(), Endpoint: env.exo.URL(), RootCAs: env.g.RootCAs(), Credential: bad}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lookups := []Lookup{{Key: "1", Property: "mail", Value: "a@x"}, {Key: "2", Property: "mail", Value: "b@x"}, {Key: "3", Property: "mail", Value: "c@x"}}
	if _, err := x2.Lookup(context.Background(), lookups); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("bad secret: %v, want a whole-call token error", err)
	}
	res := x2.Apply(context.Background(), []Update{
		{Key: "1", AccountID: "a", Target: TargetUserCertificate},
		{Key: "2", AccountID: "b", Target: TargetUserCertificate},
	})
	for _, r := range res {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "token") {
			t.Errorf("update %s: %v, want the token error", r.Key, r.Err)
		}
	}
	// The Graph token's request, and its one retry with a new token.
	if n := len(env.exo.Requests()); n != 2 {
		t.Errorf("%d requests reached Exchange, want only the two with the Graph token", n)
	}
}

func TestNewExchangeConfig(t *testing.T) {
	cred := secretCredential(t, startEmulator(t, graphtest.Options{ClientSecret: testSecret}))
	cases := []struct {
		name    string
		cfg     ExchangeConfig
		wantErr string
		scope   string
		url     string
	}{
		{"global", ExchangeConfig{TenantID: "t1"}, "", "https://outlook.office365.com/.default", "https://outlook.office365.com/adminapi/beta/t1/InvokeCommand"},
		{"usgov", ExchangeConfig{Environment: "usgov", TenantID: "t1"}, "", "https://outlook.office365.us/.default", "https://outlook.office365.us/adminapi/beta/t1/InvokeCommand"},
		{"dod", ExchangeConfig{Environment: "usgovdod", TenantID: "t1"}, "", "https://webmail.apps.mil/.default", "https://webmail.apps.mil/adminapi/beta/t1/InvokeCommand"},
		{"china", ExchangeConfig{Environment: "china", TenantID: "t1"}, "", "https://partner.outlook.cn/.default", "https://partner.outlook.cn/adminapi/beta/t1/InvokeCommand"},
		{"override keeps the scope", ExchangeConfig{TenantID: "t1", Endpoint: "https://127.0.0.1:8443/"}, "", "https://outlook.office365.com/.default", "https://127.0.0.1:8443/adminapi/beta/t1/InvokeCommand"},
		{"no tenant", ExchangeConfig{}, "tenant ID", "", ""},
		{"override with path", ExchangeConfig{TenantID: "t1", Endpoint: "https://127.0.0.1/adminapi"}, "without a path", "", ""},
		{"plain http", ExchangeConfig{TenantID: "t1", Endpoint: "http://127.0.0.1"}, "https", "", ""},
		{"unknown cloud", ExchangeConfig{TenantID: "t1", Environment: "germany"}, "germany", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Credential = cred
			x, err := NewExchange(c.cfg, nil)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if x.scope != c.scope || x.invokeURL != c.url {
				t.Errorf("scope %s, URL %s; want %s, %s", x.scope, x.invokeURL, c.scope, c.url)
			}
		})
	}
	if _, err := NewExchange(ExchangeConfig{TenantID: "t"}, nil); err == nil {
		t.Error("no credential: no error")
	}
}

func TestNormalizeCertValue(t *testing.T) {
	der := []byte{0x30, 0x82, 0x01, 0xff, 0xfe}
	std := base64.StdEncoding.EncodeToString(der)
	for _, in := range []string{std, base64.RawStdEncoding.EncodeToString(der), base64.URLEncoding.EncodeToString(der), std[:4] + "\r\n" + std[4:]} {
		if got := normalizeCertValue(in); got != std {
			t.Errorf("normalizeCertValue(%q) = %q, want %q", in, got, std)
		}
	}
	if got := normalizeCertValue("System.Byte[]"); got != "System.Byte[]" {
		t.Errorf("a value that is not base64 came back as %q; it must be kept as is", got)
	}
}
