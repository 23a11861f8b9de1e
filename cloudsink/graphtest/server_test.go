package graphtest

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/certsync/certsync/mapping/pkitest"
)

const secret = "s3cret-value"

// start runs an emulator that takes the test secret.
func start(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.ClientSecret = secret
	return startRaw(t, opts)
}

func startRaw(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.Logger = zaptest.NewLogger(t)
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func httpClient(s *Server) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}}}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) errorCode() string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Code
}

func (a answer) errorMessage() string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Message
}

// call sends one request; a body is gzipped when gz is set.
func call(t *testing.T, s *Server, method, path string, header http.Header, body []byte, gz bool) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		if gz {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(body)
			_ = zw.Close()
			body = buf.Bytes()
		}
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := httpClient(s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func tokenForm(s *Server, extra url.Values) url.Values {
	f := url.Values{
		"grant_type": {"client_credentials"},
		"client_id":  {s.ClientID()},
		"scope":      {"https://graph.microsoft.com/.default"},
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func postToken(t *testing.T, s *Server, tenant string, form url.Values) answer {
	t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	return call(t, s, http.MethodPost, "/"+tenant+"/oauth2/v2.0/token", h, []byte(form.Encode()), false)
}

func token(t *testing.T, s *Server) string {
	t.Helper()
	a := postToken(t, s, s.TenantID(), tokenForm(s, url.Values{"client_secret": {secret}}))
	if a.status != http.StatusOK {
		t.Fatalf("token: %d %s", a.status, a.body)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(a.body, &tr); err != nil || tr.AccessToken == "" || tr.TokenType != "Bearer" || tr.ExpiresIn <= 0 {
		t.Fatalf("token answer %s: %v", a.body, err)
	}
	return tr.AccessToken
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

func jsonHeader(tok string) http.Header {
	h := bearer(tok)
	h.Set("Content-Type", "application/json")
	return h
}

func patchBody(ids ...string) []byte {
	if ids == nil {
		ids = []string{}
	}
	return mustJSON(map[string]any{"@odata.type": "#microsoft.graph.user", "authorizationInfo": map[string]any{"certificateUserIds": ids}})
}

func batchBody(items ...map[string]any) []byte {
	return mustJSON(map[string]any{"requests": items})
}

func getItem(id, url string) map[string]any {
	return map[string]any{"id": id, "method": "GET", "url": url}
}

func TestStrictness(t *testing.T) {
	s := start(t, Options{Users: []User{
		{ID: "u1", UserPrincipalName: "one@contoso.example", Mail: "One@Contoso.example", OnPremisesImmutableID: "aW1tMQ=="},
		{ID: "u2", UserPrincipalName: "two@contoso.example", CertificateUserIDs: []string{"X509:<SKI>taken"}},
		{ID: "synced", UserPrincipalName: "synced@contoso.example", OnPremisesSyncEnabled: true},
	}})
	tok := token(t, s)
	eleven := make([]string, 11)
	for i := range eleven {
		eleven[i] = fmt.Sprintf("X509:<SKI>%02d", i)
	}
	sixteen := make([]string, 16)
	for i := range sixteen {
		sixteen[i] = fmt.Sprintf("'v%d'", i)
	}
	fifteen := strings.Join(sixteen[:15], ",")
	items := func(n int) []map[string]any {
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = getItem(fmt.Sprint(i), "/users/u1")
		}
		return out
	}
	long := strings.Repeat("a", 1024)
	cases := []struct {
		name      string
		method    string
		path      string
		header    http.Header
		body      []byte
		gz        bool
		status    int
		code      string
		msgSubstr string
	}{
		{"no token", "GET", "/v1.0/users", nil, nil, false, 401, "InvalidAuthenticationToken", "empty"},
		{"bad token", "GET", "/v1.0/users", bearer("not-a-token"), nil, false, 401, "InvalidAuthenticationToken", ""},
		{"basic auth", "GET", "/v1.0/users", http.Header{"Authorization": {"Basic " + tok}}, nil, false, 401, "InvalidAuthenticationToken", ""},
		{"list", "GET", "/v1.0/users", bearer(tok), nil, false, 200, "", ""},
		{"unknown $select", "GET", "/v1.0/users?$select=id,foo", bearer(tok), nil, false, 400, "BadRequest", "'foo'"},
		{"unknown query option", "GET", "/v1.0/users?$orderby=mail", bearer(tok), nil, false, 400, "Request_BadRequest", "$orderby"},
		{"$count", "GET", "/v1.0/users?$count=true", bearer(tok), nil, false, 400, "Request_BadRequest", "$count"},
		{"$filter with and", "GET", "/v1.0/users?" + q("$filter", "mail eq 'a' and id eq 'b'"), bearer(tok), nil, false, 400, "Request_UnsupportedQuery", "and"},
		{"$filter function", "GET", "/v1.0/users?" + q("$filter", "startswith(mail,'a')"), bearer(tok), nil, false, 400, "", ""},
		{"$filter unterminated", "GET", "/v1.0/users?" + q("$filter", "mail eq 'a"), bearer(tok), nil, false, 400, "BadRequest", "unterminated"},
		{"$filter unfilterable property", "GET", "/v1.0/users?" + q("$filter", "onPremisesSyncEnabled eq 'true'"), bearer(tok), nil, false, 400, "Request_UnsupportedQuery", ""},
		{"$filter ne", "GET", "/v1.0/users?" + q("$filter", "mail ne 'a'"), bearer(tok), nil, false, 400, "Request_UnsupportedQuery", "ne"},
		{"$filter in 16", "GET", "/v1.0/users?" + q("$filter", "mail in ("+strings.Join(sixteen, ",")+")"), bearer(tok), nil, false, 400, "Request_UnsupportedQuery", "Max allowed: 15"},
		{"$filter in 15", "GET", "/v1.0/users?" + q("$filter", "mail in ("+fifteen+")"), bearer(tok), nil, false, 200, "", ""},
		{"$filter 121 chars", "GET", "/v1.0/users?" + q("$filter", "mail eq '"+strings.Repeat("m", 121)+"'"), bearer(tok), nil, false, 400, "Request_UnsupportedQuery", "120"},
		{"$top 1000", "GET", "/v1.0/users?$top=1000", bearer(tok), nil, false, 400, "Request_BadRequest", "between 1 and 999"},
		{"$top 0", "GET", "/v1.0/users?$top=0", bearer(tok), nil, false, 400, "Request_BadRequest", ""},
		{"$top 999", "GET", "/v1.0/users?$top=999", bearer(tok), nil, false, 200, "", ""},
		{"$top twice", "GET", "/v1.0/users?$top=5&$top=6", bearer(tok), nil, false, 400, "BadRequest", "more than once"},
		{"unknown segment", "GET", "/v1.0/groups", bearer(tok), nil, false, 400, "BadRequest", "segment"},
		{"get missing user", "GET", "/v1.0/users/nobody", bearer(tok), nil, false, 404, "Request_ResourceNotFound", "nobody"},
		{"get by UPN", "GET", "/v1.0/users/one@contoso.example", bearer(tok), nil, false, 200, "", ""},
		{"DELETE user", "DELETE", "/v1.0/users/u1", bearer(tok), nil, false, 405, "BadRequest", ""},
		{"patch ok", "PATCH", "/v1.0/users/u1", jsonHeader(tok), patchBody("X509:<SKI>01"), false, 204, "", ""},
		{"patch gzip body", "PATCH", "/v1.0/users/u1", jsonHeader(tok), patchBody("X509:<SKI>02"), true, 204, "", ""},
		{"patch 11 values", "PATCH", "/v1.0/users/u1", jsonHeader(tok), patchBody(eleven...), false, 400, "Request_BadRequest", "at most 10"},
		{"patch 1024 chars", "PATCH", "/v1.0/users/u1", jsonHeader(tok), patchBody(long), false, 204, "", ""},
		{"patch 1025 chars", "PATCH", "/v1.0/users/u1", jsonHeader(tok), patchBody(long + "a"), false, 400, "Request_BadRequest", "1025"},
		{"patch repeated value", "PATCH", "/v1.0/users/u1", jsonHeader(tok), patchBody("X509:<SKI>aa", "x509:<ski>AA"), false, 400, "Request_BadRequest", "more than once"},
		{"patch value of another user", "PATCH", "/v1.0/users/u1", jsonHeader(tok), patchBody("X509:<SKI>ok", "X509:<SKI>taken"), false, 400, "Request_BadRequest", "X509:<SKI>taken"},
		{"patch own value again", "PATCH", "/v1.0/users/u2", jsonHeader(tok), patchBody("X509:<SKI>taken"), false, 204, "", ""},
		{"patch synced user", "PATCH", "/v1.0/users/synced", jsonHeader(tok), patchBody("X509:<SKI>03"), false, 400, "Request_BadRequest", "on-premises mastered"},
		{"patch other property", "PATCH", "/v1.0/users/u1", jsonHeader(tok), []byte(`{"mail":"x@y"}`), false, 400, "Request_BadRequest", "'mail'"},
		{"patch null ids", "PATCH", "/v1.0/users/u1", jsonHeader(tok), []byte(`{"authorizationInfo":{"certificateUserIds":null}}`), false, 400, "Request_BadRequest", ""},
		{"patch not json", "PATCH", "/v1.0/users/u1", jsonHeader(tok), []byte(`certificateUserIds=1`), false, 400, "Request_BadRequest", "JSON"},
		{"patch without content type", "PATCH", "/v1.0/users/u1", bearer(tok), patchBody("X509:<SKI>04"), false, 415, "BadRequest", ""},
		{"patch broken gzip", "PATCH", "/v1.0/users/u1", withHeader(jsonHeader(tok), "Content-Encoding", "gzip"), []byte("not gzip"), false, 400, "BadRequest", "gzip"},
		{"patch deflate", "PATCH", "/v1.0/users/u1", withHeader(jsonHeader(tok), "Content-Encoding", "deflate"), patchBody(), false, 415, "UnsupportedMediaType", "deflate"},
		{"patch missing user", "PATCH", "/v1.0/users/nobody", jsonHeader(tok), patchBody(), false, 404, "Request_ResourceNotFound", ""},
		{"batch of 20", "POST", "/v1.0/$batch", jsonHeader(tok), batchBody(items(20)...), false, 200, "", ""},
		{"batch of 21", "POST", "/v1.0/$batch", jsonHeader(tok), batchBody(items(21)...), false, 400, "BadRequest", "limit is 20"},
		{"empty batch", "POST", "/v1.0/$batch", jsonHeader(tok), batchBody(), false, 400, "BadRequest", ""},
		{"gzip batch", "POST", "/v1.0/$batch", jsonHeader(tok), batchBody(items(3)...), true, 200, "", ""},
		{"batch absolute url", "POST", "/v1.0/$batch", jsonHeader(tok), batchBody(getItem("1", "https://graph.microsoft.com/v1.0/users")), false, 400, "BadRequest", "relative"},
		{"batch versioned url", "POST", "/v1.0/$batch", jsonHeader(tok), batchBody(getItem("1", "/v1.0/users")), false, 400, "BadRequest", "version"},
		{"batch duplicate ids", "POST", "/v1.0/$batch", jsonHeader(tok), batchBody(getItem("1", "/users"), getItem("1", "/users")), false, 400, "BadRequest", "more than once"},
		{"batch dependsOn", "POST", "/v1.0/$batch", jsonHeader(tok), batchBody(map[string]any{"id": "1", "method": "GET", "url": "/users", "dependsOn": []string{"2"}}), false, 400, "BadRequest", "dependsOn"},
		{"batch unknown field", "POST", "/v1.0/$batch", jsonHeader(tok), batchBody(map[string]any{"id": "1", "method": "GET", "url": "/users", "priority": 1}), false, 400, "BadRequest", ""},
		{"batch GET", "GET", "/v1.0/$batch", bearer(tok), nil, false, 405, "BadRequest", ""},
		{"batch without token", "POST", "/v1.0/$batch", withHeader(http.Header{}, "Content-Type", "application/json"), batchBody(items(1)...), false, 401, "InvalidAuthenticationToken", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := call(t, s, c.method, c.path, c.header, c.body, c.gz)
			if a.status != c.status {
				t.Fatalf("status %d, want %d: %s", a.status, c.status, a.body)
			}
			if c.code != "" && a.errorCode() != c.code {
				t.Errorf("code %q, want %q: %s", a.errorCode(), c.code, a.body)
			}
			if c.msgSubstr != "" && !strings.Contains(a.errorMessage(), c.msgSubstr) {
				t.Errorf("message %q does not mention %q", a.errorMessage(), c.msgSubstr)
			}
			if a.status >= 400 {
				var shape struct {
					Error struct {
						Code       string `json:"code"`
						Message    string `json:"message"`
						InnerError struct {
							Date      string `json:"date"`
							RequestID string `json:"request-id"`
						} `json:"innerError"`
					} `json:"error"`
				}
				if err := json.Unmarshal(a.body, &shape); err != nil || shape.Error.Code == "" || shape.Error.Message == "" || shape.Error.InnerError.RequestID == "" || shape.Error.InnerError.Date == "" {
					t.Errorf("not Graph's error shape: %s", a.body)
				}
			}
			if a.status == http.StatusUnauthorized && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("401 without a Bearer challenge: %q", a.header.Get("WWW-Authenticate"))
			}
		})
	}
	if u, _ := s.User("u1"); len(u.CertificateUserIDs) != 1 || u.CertificateUserIDs[0] != long {
		t.Errorf("u1 after the table holds %d values, want the one 1024-character value", len(u.CertificateUserIDs))
	}
	if u, _ := s.User("synced"); len(u.CertificateUserIDs) != 0 {
		t.Errorf("synced user was written: %v", u.CertificateUserIDs)
	}
	// patch ok, gzip, 1024 chars, own value again.
	if got := s.Writes(); got != 4 {
		t.Errorf("Writes() = %d, want 4", got)
	}
}

func q(k, v string) string { return url.Values{k: {v}}.Encode() }

func withHeader(h http.Header, k, v string) http.Header {
	h = h.Clone()
	h.Set(k, v)
	return h
}

func TestExpiredToken(t *testing.T) {
	s := start(t, Options{})
	tok := token(t, s)
	if a := call(t, s, "GET", "/v1.0/users", bearer(tok), nil, false); a.status != 200 {
		t.Fatalf("fresh token: %d %s", a.status, a.body)
	}
	s.ExpireTokens()
	a := call(t, s, "GET", "/v1.0/users", bearer(tok), nil, false)
	if a.status != 401 || a.errorCode() != "InvalidAuthenticationToken" || !strings.Contains(a.errorMessage(), "expired") {
		t.Fatalf("expired token: %d %s", a.status, a.body)
	}
}

func TestFilterAndSelect(t *testing.T) {
	s := start(t, Options{Users: []User{
		{ID: "a", UserPrincipalName: "a@x.example", Mail: "O'Brien@X.example", OnPremisesImmutableID: "QUJD", CertificateUserIDs: []string{"X509:<SKI>a"}},
		{ID: "b", UserPrincipalName: "b@x.example", Mail: "b+tag@x.example", OnPremisesImmutableID: "YWJj", OnPremisesSyncEnabled: true},
		{ID: "c", UserPrincipalName: "c@x.example"},
		{ID: "d", UserPrincipalName: "d@x.example", Mail: "shared@x.example"},
		{ID: "e", UserPrincipalName: "e@x.example", Mail: "SHARED@x.example"},
	}})
	tok := token(t, s)
	cases := []struct {
		filter string
		want   []string
	}{
		{"mail eq 'o''brien@x.example'", []string{"a"}},
		{"mail in ('B+TAG@x.example', 'nobody@x.example')", []string{"b"}},
		{"userPrincipalName in ('a@x.example','C@X.EXAMPLE')", []string{"a", "c"}},
		{"onPremisesImmutableId eq 'QUJD'", []string{"a"}},
		{"onPremisesImmutableId eq 'qujd'", nil}, // base64: case matters
		{"id in ('A','b')", []string{"a", "b"}},
		{"mail eq 'c@x.example'", nil},                                                 // c has no mail
		{"mail eq 'shared@x.example'", []string{"d", "e"}},                             // mail is not unique
		{"mail in ('shared@x.example','o''brien@x.example')", []string{"a", "d", "e"}}, // listing order
		{"userPrincipalName eq 'a'", nil},                                              // an id is no userPrincipalName
	}
	for _, c := range cases {
		t.Run(c.filter, func(t *testing.T) {
			a := call(t, s, "GET", "/v1.0/users?"+url.Values{"$filter": {c.filter}, "$select": {"id,mail,onPremisesSyncEnabled,authorizationInfo"}}.Encode(), bearer(tok), nil, false)
			if a.status != 200 {
				t.Fatalf("%d %s", a.status, a.body)
			}
			var page struct {
				Value []map[string]any `json:"value"`
			}
			if err := json.Unmarshal(a.body, &page); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range page.Value {
				got = append(got, u["id"].(string))
				if _, ok := u["authorizationInfo"].(map[string]any)["certificateUserIds"].([]any); !ok {
					t.Errorf("user %v: authorizationInfo.certificateUserIds is not an array", u["id"])
				}
				if _, ok := u["userPrincipalName"]; ok {
					t.Errorf("user %v: userPrincipalName returned without being selected", u["id"])
				}
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
	// A user whose mail changes is found by the new one only.
	s.AddUser(User{ID: "d", UserPrincipalName: "d@x.example", Mail: "d@x.example"})
	s.DeleteUser("e")
	for filter, want := range map[string]int{"mail eq 'shared@x.example'": 0, "mail eq 'd@x.example'": 1} {
		a := call(t, s, "GET", "/v1.0/users?"+url.Values{"$filter": {filter}}.Encode(), bearer(tok), nil, false)
		var page struct {
			Value []map[string]any `json:"value"`
		}
		if err := json.Unmarshal(a.body, &page); err != nil || len(page.Value) != want {
			t.Errorf("%s after the change: %s, want %d users", filter, a.body, want)
		}
	}
	// Without $select, authorizationInfo and onPremises* stay out, as in Graph.
	a := call(t, s, "GET", "/v1.0/users/a", bearer(tok), nil, false)
	var u map[string]any
	if err := json.Unmarshal(a.body, &u); err != nil {
		t.Fatal(err)
	}
	if _, ok := u["authorizationInfo"]; ok || u["userPrincipalName"] != "a@x.example" {
		t.Errorf("default projection: %s", a.body)
	}
}

func TestPaging(t *testing.T) {
	var users []User
	for i := range 250 {
		users = append(users, User{UserPrincipalName: fmt.Sprintf("u%03d@x.example", i)})
	}
	s := start(t, Options{Users: users})
	tok := token(t, s)
	next := s.URL() + "/v1.0/users?$top=100&$select=id,userPrincipalName"
	seen := map[string]bool{}
	pages := 0
	var firstNext string
	for next != "" {
		pages++
		u, err := url.Parse(next)
		if err != nil {
			t.Fatal(err)
		}
		a := call(t, s, "GET", u.RequestURI(), bearer(tok), nil, false)
		if a.status != 200 {
			t.Fatalf("page %d: %d %s", pages, a.status, a.body)
		}
		var page struct {
			Value []struct {
				ID string `json:"id"`
			} `json:"value"`
			Next string `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(a.body, &page); err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Value {
			if seen[v.ID] {
				t.Fatalf("user %s on two pages", v.ID)
			}
			seen[v.ID] = true
		}
		if page.Next != "" && !strings.Contains(page.Next, "skiptoken") {
			t.Fatalf("nextLink without $skiptoken: %s", page.Next)
		}
		if firstNext == "" {
			firstNext = page.Next
		}
		next = page.Next
	}
	if pages != 3 || len(seen) != 250 {
		t.Fatalf("%d pages, %d users; want 3 pages, 250 users", pages, len(seen))
	}
	u, _ := url.Parse(firstNext)
	qs := u.Query()
	qs.Set("$top", "5")
	if a := call(t, s, "GET", "/v1.0/users?"+qs.Encode(), bearer(tok), nil, false); a.status != 400 {
		t.Errorf("skiptoken with another $top: %d, want 400", a.status)
	}
	qs = u.Query()
	qs.Set("$skiptoken", "forged")
	if a := call(t, s, "GET", "/v1.0/users?"+qs.Encode(), bearer(tok), nil, false); a.status != 400 {
		t.Errorf("forged skiptoken: %d, want 400", a.status)
	}
}

type batchAnswer struct {
	Responses []struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"responses"`
}

func postBatch(t *testing.T, s *Server, tok string, items ...map[string]any) (answer, batchAnswer) {
	t.Helper()
	a := call(t, s, "POST", "/v1.0/$batch", jsonHeader(tok), batchBody(items...), true)
	var ba batchAnswer
	if a.status == 200 {
		if err := json.Unmarshal(a.body, &ba); err != nil {
			t.Fatal(err)
		}
	}
	return a, ba
}

func TestBatch(t *testing.T) {
	s := start(t, Options{Users: []User{{ID: "u1"}, {ID: "u2"}, {ID: "synced", OnPremisesSyncEnabled: true}}})
	tok := token(t, s)
	s.ResetRequests()
	patch := func(id, user string, ids ...string) map[string]any {
		return map[string]any{"id": id, "method": "PATCH", "url": "/users/" + user,
			"headers": map[string]string{"Content-Type": "application/json"}, "body": json.RawMessage(patchBody(ids...))}
	}
	a, ba := postBatch(t, s, tok,
		patch("1", "u1", "X509:<SKI>1"),
		patch("2", "synced", "X509:<SKI>2"),
		getItem("3", "/users/u1?$select=authorizationInfo"),
		map[string]any{"id": "4", "method": "PATCH", "url": "/users/u2", "body": json.RawMessage(patchBody("X509:<SKI>4"))},
		getItem("5", "/users?$top=1000"),
	)
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	want := map[string]int{"1": 204, "2": 400, "3": 200, "4": 400, "5": 400}
	if len(ba.Responses) != len(want) {
		t.Fatalf("%d responses, want %d", len(ba.Responses), len(want))
	}
	if ba.Responses[0].ID == "1" {
		t.Errorf("responses come in request order; the emulator is meant to shuffle them")
	}
	for _, r := range ba.Responses {
		if r.Status != want[r.ID] {
			t.Errorf("item %s: status %d, want %d: %s", r.ID, r.Status, want[r.ID], r.Body)
		}
	}
	if s.Writes() != 1 {
		t.Errorf("Writes() = %d, want 1", s.Writes())
	}
	reqs := s.Requests()
	if len(reqs) != 6 || reqs[0].Path != "/v1.0/$batch" || !reqs[0].GzipBody || reqs[0].InBatch {
		t.Fatalf("request log: %+v", reqs)
	}
	for _, r := range reqs[1:] {
		if !r.InBatch || r.BatchID != reqs[0].BatchID || r.Status != want[r.ItemID] || !r.GzipBody {
			t.Errorf("item log entry %+v", r)
		}
	}
}

func TestFaultKnobs(t *testing.T) {
	s := start(t, Options{Users: []User{{ID: "u1"}}})
	tok := token(t, s)

	s.Throttle(2, 1500*time.Millisecond)
	for i, want := range []int{429, 429, 200} {
		a := call(t, s, "GET", "/v1.0/users/u1", bearer(tok), nil, false)
		if a.status != want {
			t.Fatalf("request %d: %d, want %d", i, a.status, want)
		}
		if want == 429 && (a.header.Get("Retry-After") != "2" || a.errorCode() != "TooManyRequests") {
			t.Errorf("throttled answer: Retry-After %q, code %q", a.header.Get("Retry-After"), a.errorCode())
		}
	}

	// Items count one by one; the envelope is not an operation.
	s.Throttle(3, time.Second)
	items := make([]map[string]any, 5)
	for i := range items {
		items[i] = getItem(fmt.Sprint(i+1), "/users/u1")
	}
	a, ba := postBatch(t, s, tok, items...)
	if a.status != 200 {
		t.Fatalf("batch: %d %s", a.status, a.body)
	}
	throttled := 0
	for _, r := range ba.Responses {
		switch r.Status {
		case 429:
			throttled++
			if r.Headers["Retry-After"] != "1" {
				t.Errorf("item %s: Retry-After %q", r.ID, r.Headers["Retry-After"])
			}
		case 200:
		default:
			t.Errorf("item %s: %d", r.ID, r.Status)
		}
	}
	if throttled != 3 {
		t.Errorf("%d items throttled, want 3", throttled)
	}

	s.Fail(1, http.StatusServiceUnavailable)
	a = call(t, s, "GET", "/v1.0/users/u1", bearer(tok), nil, false)
	if a.status != 503 || a.errorCode() != "ServiceNotAvailable" || a.header.Get("Retry-After") != "" {
		t.Errorf("Fail: %d %q Retry-After %q", a.status, a.errorCode(), a.header.Get("Retry-After"))
	}

	s.ThrottleBatches(1, 2*time.Second)
	s.ResetRequests()
	a, _ = postBatch(t, s, tok, items...)
	if a.status != 429 || a.header.Get("Retry-After") != "2" {
		t.Errorf("ThrottleBatches: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	if n := len(s.Requests()); n != 1 {
		t.Errorf("a throttled envelope ran items: %d log entries", n)
	}

	s.SetLatency(150 * time.Millisecond)
	began := time.Now()
	call(t, s, "GET", "/v1.0/users/u1", bearer(tok), nil, false)
	if d := time.Since(began); d < 150*time.Millisecond {
		t.Errorf("SetLatency(150ms): answered after %v", d)
	}
}

func TestResponseGzip(t *testing.T) {
	s := start(t, Options{Users: []User{{ID: "u1"}}})
	tok := token(t, s)
	// Go's transport asks for gzip itself and unpacks it.
	req, _ := http.NewRequest("GET", s.URL()+"/v1.0/users", nil)
	req.Header = bearer(tok)
	resp, err := httpClient(s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !resp.Uncompressed || !json.Valid(body) {
		t.Errorf("transparent gzip: Uncompressed=%v body %q", resp.Uncompressed, body)
	}
	// Without Accept-Encoding the body is plain.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}, DisableCompression: true}
	resp, err = (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "" || !json.Valid(body) {
		t.Errorf("plain answer: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
}

func TestOpenIDConfiguration(t *testing.T) {
	s := start(t, Options{})
	a := call(t, s, "GET", "/"+s.TenantID()+"/v2.0/.well-known/openid-configuration", nil, nil, false)
	var cfg map[string]any
	if err := json.Unmarshal(a.body, &cfg); err != nil || a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	base := s.URL() + "/" + s.TenantID()
	if cfg["issuer"] != base+"/v2.0" || cfg["token_endpoint"] != base+"/oauth2/v2.0/token" || cfg["authorization_endpoint"] != base+"/oauth2/v2.0/authorize" {
		t.Errorf("configuration: %s", a.body)
	}
	a = call(t, s, "GET", "/other-tenant/v2.0/.well-known/openid-configuration", nil, nil, false)
	if a.status != 400 || !strings.Contains(string(a.body), "AADSTS90002") {
		t.Errorf("unknown tenant: %d %s", a.status, a.body)
	}
}

// assertion signs a client assertion JWT as MSAL does (PS256 + x5t#S256),
// or as ADFS-era clients do (RS256 + x5t).
func assertion(t *testing.T, cert *x509.Certificate, key *rsa.PrivateKey, alg, aud, iss string, exp time.Time) string {
	t.Helper()
	hdr := map[string]any{"alg": alg, "typ": "JWT"}
	if alg == "PS256" {
		h := sha256.Sum256(cert.Raw)
		hdr["x5t#S256"] = base64.StdEncoding.EncodeToString(h[:])
	} else {
		h := sha1Sum(cert.Raw)
		hdr["x5t"] = base64.RawURLEncoding.EncodeToString(h)
	}
	claims := map[string]any{"aud": aud, "iss": iss, "sub": iss, "jti": newGUID(), "nbf": time.Now().Unix(), "exp": exp.Unix()}
	in := base64.RawURLEncoding.EncodeToString(mustJSON(hdr)) + "." + base64.RawURLEncoding.EncodeToString(mustJSON(claims))
	d := sha256.Sum256([]byte(in))
	var sig []byte
	var err error
	if alg == "PS256" {
		sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	} else {
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func sha1Sum(b []byte) []byte {
	h := sha1.Sum(b)
	return h[:]
}

func TestTokenEndpoint(t *testing.T) {
	ca, err := pkitest.NewRootCA("client CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue(pkitest.LeafOptions{CommonName: "certsync app", RSA: true})
	if err != nil {
		t.Fatal(err)
	}
	other, otherKey, err := ca.Issue(pkitest.LeafOptions{CommonName: "stranger", RSA: true})
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, Options{ClientCertificates: []*x509.Certificate{cert}})
	noSecret := startRaw(t, Options{ClientCertificates: []*x509.Certificate{cert}})
	aud := s.tokenEndpoint()
	rk := key.(*rsa.PrivateKey)
	in := time.Now().Add(10 * time.Minute)
	cases := []struct {
		name   string
		srv    *Server
		tenant string
		form   url.Values
		status int
		aadsts string
	}{
		{"secret", s, "", tokenForm(s, url.Values{"client_secret": {secret}}), 200, ""},
		{"wrong secret", s, "", tokenForm(s, url.Values{"client_secret": {"nope"}}), 401, "AADSTS7000215"},
		{"secrets disabled", noSecret, "", tokenForm(noSecret, url.Values{"client_secret": {secret}}), 401, "AADSTS7000215"},
		{"no credential", s, "", tokenForm(s, nil), 401, "AADSTS7000218"},
		{"wrong tenant", s, "contoso-other", tokenForm(s, url.Values{"client_secret": {secret}}), 400, "AADSTS90002"},
		{"wrong client", s, "", tokenForm(s, url.Values{"client_secret": {secret}, "client_id": {"someone-else"}}), 400, "AADSTS700016"},
		{"scope without .default", s, "", tokenForm(s, url.Values{"client_secret": {secret}, "scope": {"https://graph.microsoft.com/User.Read.All"}}), 400, "AADSTS1002012"},
		{"scope of another resource", s, "", tokenForm(s, url.Values{"client_secret": {secret}, "scope": {"https://vault.azure.net/.default"}}), 400, "AADSTS500011"},
		{"scope of the emulator", s, "", tokenForm(s, url.Values{"client_secret": {secret}, "scope": {s.URL() + "/.default"}}), 200, ""},
		{"password grant", s, "", tokenForm(s, url.Values{"client_secret": {secret}, "grant_type": {"password"}}), 400, "AADSTS70003"},
		{"assertion PS256", s, "", tokenForm(s, assertionForm(assertion(t, cert, rk, "PS256", aud, s.ClientID(), in))), 200, ""},
		{"assertion RS256 x5t", s, "", tokenForm(s, assertionForm(assertion(t, cert, rk, "RS256", aud, s.ClientID(), in))), 200, ""},
		{"assertion unregistered certificate", s, "", tokenForm(s, assertionForm(assertion(t, other, otherKey.(*rsa.PrivateKey), "PS256", aud, s.ClientID(), in))), 401, "AADSTS700027"},
		{"assertion signed by another key", s, "", tokenForm(s, assertionForm(assertion(t, cert, otherKey.(*rsa.PrivateKey), "PS256", aud, s.ClientID(), in))), 401, "AADSTS700027"},
		{"assertion wrong audience", s, "", tokenForm(s, assertionForm(assertion(t, cert, rk, "PS256", "https://login.microsoftonline.com/x/oauth2/v2.0/token", s.ClientID(), in))), 401, "AADSTS700212"},
		{"assertion wrong issuer", s, "", tokenForm(s, assertionForm(assertion(t, cert, rk, "PS256", aud, "someone-else", in))), 401, "AADSTS700021"},
		{"assertion expired", s, "", tokenForm(s, assertionForm(assertion(t, cert, rk, "PS256", aud, s.ClientID(), time.Now().Add(-time.Hour)))), 401, "AADSTS700024"},
		{"assertion not a JWT", s, "", tokenForm(s, assertionForm("abc")), 401, "AADSTS50027"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tenant := c.tenant
			if tenant == "" {
				tenant = c.srv.TenantID()
			}
			a := postToken(t, c.srv, tenant, c.form)
			if a.status != c.status {
				t.Fatalf("status %d, want %d: %s", a.status, c.status, a.body)
			}
			if c.aadsts == "" {
				return
			}
			var e struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.Unmarshal(a.body, &e); err != nil || e.Error == "" || !strings.HasPrefix(e.Description, c.aadsts+":") {
				t.Errorf("want %s in Entra's error shape, got %s", c.aadsts, a.body)
			}
		})
	}
}

func assertionForm(jwt string) url.Values {
	return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {jwt}}
}
