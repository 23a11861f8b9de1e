package exotest

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/mapping/pkitest"
)

const secret = "exotest-secret"

type env struct {
	g     *graphtest.Server
	s     *Server
	http  *http.Client
	exo   string // a token for Exchange
	graph string // a token for Graph
	certs [][]byte
}

func start(t *testing.T, mailboxes ...Mailbox) *env {
	t.Helper()
	return startWith(t, Options{Mailboxes: mailboxes})
}

func startWith(t *testing.T, opts Options) *env {
	t.Helper()
	g, err := graphtest.Start(graphtest.Options{ClientSecret: secret, Logger: zaptest.NewLogger(t).Named("graph")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	})
	opts.Logger = zaptest.NewLogger(t).Named("exchange")
	s, err := Mount(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{g: g, s: s, http: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: g.RootCAs()}}}}
	e.exo = e.token(t, "https://outlook.office365.com/.default")
	e.graph = e.token(t, "https://graph.microsoft.com/.default")
	ca, err := pkitest.NewRootCA("exotest CA")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 16 {
		c, _, err := ca.Issue(pkitest.LeafOptions{CommonName: fmt.Sprintf("leaf %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		e.certs = append(e.certs, c.Raw)
	}
	return e
}

func (e *env) token(t *testing.T, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {e.g.ClientID()}, "client_secret": {secret}, "scope": {scope}}
	resp, err := e.http.PostForm(e.g.URL()+"/"+e.g.TenantID()+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("token for %s: status %d, %v", scope, resp.StatusCode, err)
	}
	return body.AccessToken
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

// errorType is the exception type of a cmdlet error, or the error code.
func (a answer) errorType() string {
	e, _ := a.body["error"].(map[string]any)
	if d, ok := e["details"].([]any); ok && len(d) > 0 {
		m, _ := d[0].(map[string]any)["message"].(string)
		if parts := strings.SplitN(m, "|", 3); len(parts) == 3 {
			return parts[1] + ": " + parts[2]
		}
	}
	c, _ := e["code"].(string)
	return c
}

type call struct {
	method, path, query string
	header              map[string]string
	body                string
	gzip                bool
}

func (e *env) do(t *testing.T, c call) answer {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.path == "" {
		c.path = "/adminapi/beta/" + e.s.TenantID() + "/InvokeCommand"
	}
	body := []byte(c.body)
	if c.gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = buf.Bytes()
	}
	target := e.s.URL() + c.path
	if c.query != "" {
		target += "?" + c.query
	}
	req, err := http.NewRequest(c.method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.exo)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-AnchorMailbox", "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@"+e.s.TenantID())
	if c.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range c.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %q", c.method, c.path, raw)
	}
	return a
}

func cmdlet(name string, params map[string]any) string {
	b, _ := json.Marshal(map[string]any{"CmdletInput": map[string]any{"CmdletName": name, "Parameters": params}})
	return string(b)
}

func b64(ders ...[]byte) []string {
	out := make([]string, len(ders))
	for i, d := range ders {
		out[i] = base64.StdEncoding.EncodeToString(d)
	}
	return out
}

// byteArrays is a byte[][] parameter as the module sends it, merged into
// params (extra ones beside it): the annotated collection of
// {"@odata.type","Data"} items.
func byteArrays(params map[string]any, name string, ders ...[]byte) map[string]any {
	items := make([]map[string]any, len(ders))
	for i, d := range ders {
		items[i] = map[string]any{"@odata.type": "#Exchange.ByteArrayType", "Data": base64.StdEncoding.EncodeToString(d)}
	}
	params[name+"@odata.type"] = "#Collection(Exchange.ByteArrayType)"
	params[name] = items
	return params
}

func TestStrictness(t *testing.T) {
	e := start(t,
		Mailbox{UserPrincipalName: "ada@contoso.example"},
		Mailbox{UserPrincipalName: "synced@contoso.example", IsDirSynced: true},
		Mailbox{UserPrincipalName: "twin1@contoso.example", Identity: "twin"},
		Mailbox{UserPrincipalName: "twin2@contoso.example", Identity: "twin"},
	)
	set := func(p map[string]any) string { p["Identity"] = "ada@contoso.example"; return cmdlet("Set-Mailbox", p) }
	cases := []struct {
		name   string
		call   call
		status int
		want   string // substring of errorType()
	}{
		{"no bearer token", call{body: cmdlet("Get-Mailbox", nil), header: map[string]string{"Authorization": ""}}, 401, "InvalidAuthenticationToken"},
		{"graph token", call{body: cmdlet("Get-Mailbox", nil), header: map[string]string{"Authorization": "Bearer " + e.graph}}, 401, "InvalidAuthenticationToken"},
		{"unknown token", call{body: cmdlet("Get-Mailbox", nil), header: map[string]string{"Authorization": "Bearer forged"}}, 401, "InvalidAuthenticationToken"},
		{"missing tenant", call{path: "/adminapi/beta/InvokeCommand", body: cmdlet("Get-Mailbox", nil)}, 404, "NotFound"},
		{"empty tenant", call{path: "/adminapi/beta//InvokeCommand", body: cmdlet("Get-Mailbox", nil)}, 404, "NotFound"},
		{"other tenant", call{path: "/adminapi/beta/other.onmicrosoft.com/InvokeCommand", body: cmdlet("Get-Mailbox", nil)}, 400, "BadRequest"},
		{"v1.0 path", call{path: "/adminapi/v1.0/" + e.s.TenantID() + "/InvokeCommand", body: cmdlet("Get-Mailbox", nil)}, 404, "NotFound"},
		{"GET", call{method: http.MethodGet}, 405, "MethodNotAllowed"},
		{"gzip body", call{body: cmdlet("Get-Mailbox", nil), gzip: true}, 415, "UnsupportedMediaType"},
		{"form body", call{body: "a=b", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, "UnsupportedMediaType"},
		{"no anchor", call{body: cmdlet("Get-Mailbox", nil), header: map[string]string{"X-AnchorMailbox": ""}}, 400, "BadRequest"},
		{"bare anchor", call{body: cmdlet("Get-Mailbox", nil), header: map[string]string{"X-AnchorMailbox": "ada@contoso.example"}}, 400, "BadRequest"},
		{"not CmdletInput", call{body: `{"CmdletName":"Get-Mailbox"}`}, 400, "BadRequest"},
		{"extra body field", call{body: `{"CmdletInput":{"CmdletName":"Get-Mailbox"},"Extra":1}`}, 400, "BadRequest"},
		{"X-CmdletName mismatch", call{body: cmdlet("Get-Mailbox", nil), header: map[string]string{"X-CmdletName": "Set-Mailbox"}}, 400, "BadRequest"},
		{"unknown query", call{body: cmdlet("Get-Mailbox", nil), query: "$filter=x"}, 400, "BadRequest"},
		{"unknown cmdlet", call{body: cmdlet("Remove-Mailbox", map[string]any{"Identity": "ada"})}, 400, "CommandNotFoundException"},
		{"unknown parameter", call{body: cmdlet("Get-Mailbox", map[string]any{"Anr": "ada"})}, 400, "ParameterBindingException"},
		{"missing mailbox", call{body: cmdlet("Get-Mailbox", map[string]any{"Identity": "nobody@contoso.example"})}, 400, "ManagementObjectNotFoundException: The operation couldn't be performed because object 'nobody@contoso.example' couldn't be found"},
		{"ambiguous identity", call{body: cmdlet("Get-Mailbox", map[string]any{"Identity": "twin"})}, 400, "ManagementObjectAmbiguousException"},
		{"set without identity", call{body: cmdlet("Set-Mailbox", map[string]any{"UserCertificate": []string{}})}, 400, "missing mandatory parameters: Identity"},
		{"set unknown parameter", call{body: set(map[string]any{"EmailAddresses": []string{"smtp:x@y"}})}, 400, "ParameterBindingException"},
		{"16 values", call{body: set(byteArrays(map[string]any{}, "UserCertificate", e.certs...))}, 400, "DataValidationException: The property 'UserCertificate' can hold at most 15 values; 16 were given"},
		{"not base64", call{body: set(map[string]any{"UserSMimeCertificate": []string{"X509:<SKI>00"}})}, 400, "ParameterBindingException"},
		{"base64 of a non-certificate", call{body: set(byteArrays(map[string]any{}, "UserSMimeCertificate", []byte("hello")))}, 400, "DataValidationException: The value 1 of property 'UserSMimeCertificate' is neither an X.509 certificate"},
		{"not an array", call{body: set(map[string]any{"UserCertificate": b64(e.certs[0])[0]})}, 400, "ParameterBindingException"},
		{"plain base64 strings", call{body: set(map[string]any{"UserCertificate@odata.type": "#Collection(Exchange.ByteArrayType)", "UserCertificate": b64(e.certs[0])})}, 400,
			"ParameterBindingException: Cannot bind parameter 'UserCertificate'. Value 1 is not {"},
		{"no collection annotation", call{body: set(map[string]any{"UserCertificate": []map[string]any{{"Data": b64(e.certs[0])[0]}}})}, 400,
			"The collection must be annotated 'UserCertificate@odata.type': '#Collection(Exchange.ByteArrayType)'"},
		{"an item of another type", call{body: set(map[string]any{"UserCertificate@odata.type": "#Collection(Exchange.ByteArrayType)",
			"UserCertificate": []map[string]any{{"@odata.type": "#Exchange.GenericHashTable", "Data": b64(e.certs[0])[0]}}})}, 400, "Value 1 is not {"},
		{"an annotation alone", call{body: set(map[string]any{"UserCertificate@odata.type": "#Collection(Exchange.ByteArrayType)"})}, 400, "sent without the parameter"},
		{"synced mailbox", call{body: cmdlet("Set-Mailbox", byteArrays(map[string]any{"Identity": "synced@contoso.example"}, "UserCertificate", e.certs[0]))}, 400,
			"The operation on mailbox \"synced@contoso.example\" failed because it's out of the current user's write scope. The action 'Set-Mailbox', 'UserCertificate', can't be performed"},
		{"set missing mailbox", call{body: cmdlet("Set-Mailbox", map[string]any{"Identity": "nobody", "UserCertificate": []string{}})}, 400, "ManagementObjectNotFoundException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := e.do(t, c.call)
			if a.status != c.status || !strings.Contains(a.errorType(), c.want) {
				t.Errorf("status %d, error %q; want %d and %q", a.status, a.errorType(), c.status, c.want)
			}
		})
	}
	if e.s.Writes() != 0 {
		t.Errorf("%d writes after refusals only", e.s.Writes())
	}
	// The Exchange token is no good for Graph either.
	req, _ := http.NewRequest(http.MethodGet, e.g.URL()+"/v1.0/users", nil)
	req.Header.Set("Authorization", "Bearer "+e.exo)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("Graph with an Exchange token: %d, want 401", resp.StatusCode)
	}
}

func TestGetAndSet(t *testing.T) {
	e := start(t, Mailbox{UserPrincipalName: "ada@contoso.example", ExternalDirectoryObjectID: "11111111-1111-4111-8111-111111111111"})
	a := e.do(t, call{body: cmdlet("Set-Mailbox", byteArrays(byteArrays(map[string]any{"Identity": "11111111-1111-4111-8111-111111111111"}, "UserCertificate", e.certs[0:2]...), "UserSMimeCertificate", e.certs[2]))})
	if a.status != 200 || e.s.Writes() != 1 {
		t.Fatalf("Set-Mailbox: %d %v, %d writes", a.status, a.body, e.s.Writes())
	}
	a = e.do(t, call{body: cmdlet("get-mailbox", map[string]any{"identity": "ADA@contoso.example"}), query: "$select=UserCertificate,ExternalDirectoryObjectId"})
	v := a.body["value"].([]any)
	m := v[0].(map[string]any)
	if len(v) != 1 || len(m) != 4 || m["ExternalDirectoryObjectId"] != "11111111-1111-4111-8111-111111111111" {
		t.Fatalf("Get-Mailbox with $select: %v", a.body)
	}
	if got := fmt.Sprint(m["UserCertificate"]); got != fmt.Sprint(b64(e.certs[0:2]...)) {
		t.Errorf("UserCertificate %s", got)
	}
	// null and [] both clear.
	for _, clear := range []any{nil, []string{}} {
		e.do(t, call{body: cmdlet("Set-Mailbox", map[string]any{"Identity": "ada", "UserSMimeCertificate": clear})})
	}
	if mb, _ := e.s.Mailbox("11111111-1111-4111-8111-111111111111"); len(mb.UserSMimeCertificate) != 0 || len(mb.UserCertificate) != 2 {
		t.Errorf("after clearing: %d/%d values", len(mb.UserCertificate), len(mb.UserSMimeCertificate))
	}
}

func TestListingPages(t *testing.T) {
	var mbs []Mailbox
	for i := range 5 {
		mbs = append(mbs, Mailbox{UserPrincipalName: fmt.Sprintf("u%d@contoso.example", i)})
	}
	e := start(t, mbs...)
	body := cmdlet("Get-Mailbox", map[string]any{"ResultSize": "Unlimited"})
	var upns []string
	query, pages := "$select=UserPrincipalName", 0
	for {
		a := e.do(t, call{body: body, query: query, header: map[string]string{"Prefer": "odata.maxpagesize=2"}})
		if a.status != 200 {
			t.Fatalf("page %d: %d %v", pages, a.status, a.body)
		}
		pages++
		for _, v := range a.body["value"].([]any) {
			upns = append(upns, v.(map[string]any)["UserPrincipalName"].(string))
		}
		next, _ := a.body["@odata.nextLink"].(string)
		if next == "" {
			break
		}
		u, err := url.Parse(next)
		if err != nil || !strings.HasPrefix(next, e.s.URL()) {
			t.Fatalf("nextLink %q", next)
		}
		query = u.RawQuery
	}
	if pages != 3 || strings.Join(upns, ",") != "u0@contoso.example,u1@contoso.example,u2@contoso.example,u3@contoso.example,u4@contoso.example" {
		t.Errorf("%d pages: %v", pages, upns)
	}
	// A $skiptoken belongs to its listing.
	a := e.do(t, call{body: cmdlet("Get-Mailbox", map[string]any{"ResultSize": 3}), query: "$skiptoken=forged"})
	if a.status != 400 {
		t.Errorf("forged $skiptoken: %d", a.status)
	}
	a = e.do(t, call{body: cmdlet("Get-Mailbox", map[string]any{"ResultSize": 3})})
	if w := a.body["@adminapi.warnings"].([]any); len(a.body["value"].([]any)) != 3 || len(w) != 1 {
		t.Errorf("ResultSize 3: %v", a.body)
	}
}

func TestFaultKnobs(t *testing.T) {
	e := start(t, Mailbox{UserPrincipalName: "ada@contoso.example"})
	get := call{body: cmdlet("Get-Mailbox", map[string]any{"Identity": "ada"})}
	e.s.Throttle(1, 1500*time.Millisecond)
	if a := e.do(t, get); a.status != 429 || a.header.Get("Retry-After") != "2" {
		t.Errorf("throttled: %d, Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	e.s.Fail(1, 503)
	if a := e.do(t, get); a.status != 503 || a.header.Get("Retry-After") != "" {
		t.Errorf("fail: %d", a.status)
	}
	if a := e.do(t, get); a.status != 200 {
		t.Errorf("after the knobs: %d", a.status)
	}
	e.s.DropWriteAnswers(1)
	req, _ := http.NewRequest(http.MethodPost, e.s.URL()+"/adminapi/beta/"+e.s.TenantDomain()+"/InvokeCommand",
		strings.NewReader(cmdlet("Set-Mailbox", byteArrays(map[string]any{"Identity": "ada"}, "UserCertificate", e.certs[0]))))
	req.Header.Set("Authorization", "Bearer "+e.exo)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-AnchorMailbox", "UPN:ada@contoso.example")
	if resp, err := e.http.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("dropped answer came through: %d", resp.StatusCode)
	}
	reqs := e.s.Requests()
	if e.s.Writes() != 1 || !reqs[len(reqs)-1].AnswerDropped || reqs[len(reqs)-1].Cmdlet != "Set-Mailbox" {
		t.Errorf("%d writes, last request %+v", e.s.Writes(), reqs[len(reqs)-1])
	}
	e.s.SetLatency(50 * time.Millisecond)
	start := time.Now()
	e.do(t, get)
	if time.Since(start) < 50*time.Millisecond {
		t.Error("latency not applied")
	}
}
