package graphtest

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// claimsOf decodes a JWT's payload without verifying it.
func claimsOf(t *testing.T, tok string) map[string]json.RawMessage {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT: %d segments", len(parts))
	}
	var hdr struct{ Typ, Alg string }
	if err := decodeSegment(parts[0], &hdr); err != nil || hdr.Typ != "JWT" || hdr.Alg == "" {
		t.Fatalf("JWT header %+v: %v", hdr, err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func claimString(c map[string]json.RawMessage, k string) string {
	var s string
	_ = json.Unmarshal(c[k], &s)
	return s
}

func claimList(c map[string]json.RawMessage, k string) []string {
	var l []string
	_ = json.Unmarshal(c[k], &l)
	return l
}

func TestAccessTokenClaims(t *testing.T) {
	cases := []struct {
		name      string
		opts      Options
		roles     []string
		wids      []string
		widsClaim bool
	}{
		{"defaults", Options{}, []string{"User.ReadWrite.All"}, []string{RolePrivilegedAuthenticationAdministrator, RoleExchangeAdministrator}, true},
		{"configured", Options{Roles: []string{"User.Read.All"}, DirectoryRoles: []string{RoleGlobalAdministrator}}, []string{"User.Read.All"}, []string{RoleGlobalAdministrator}, true},
		{"none", Options{Roles: []string{}, DirectoryRoles: []string{}}, nil, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := start(t, c.opts)
			tok := token(t, s)
			cl := claimsOf(t, tok)
			for k, want := range map[string]string{
				"aud": "https://graph.microsoft.com", "tid": s.TenantID(), "appid": s.ClientID(),
				"idtyp": "app", "appidacr": "1", "ver": "1.0", "iss": "https://sts.windows.net/" + s.TenantID() + "/",
			} {
				if got := claimString(cl, k); got != want {
					t.Errorf("claim %s = %q, want %q", k, got, want)
				}
			}
			var exp int64
			if err := json.Unmarshal(cl["exp"], &exp); err != nil || time.Unix(exp, 0).Before(time.Now().Add(50*time.Minute)) {
				t.Errorf("exp %s: want about an hour ahead (%v)", cl["exp"], err)
			}
			if got := claimList(cl, "roles"); !slices.Equal(got, c.roles) {
				t.Errorf("roles %v, want %v", got, c.roles)
			}
			_, hasWids := cl["wids"]
			if got := claimList(cl, "wids"); !slices.Equal(got, c.wids) || hasWids != c.widsClaim {
				t.Errorf("wids %v (present %v), want %v (present %v)", got, hasWids, c.wids, c.widsClaim)
			}
			info, ok := s.Token(tok)
			if !ok || !slices.Equal(info.Roles, c.roles) || !slices.Equal(info.DirectoryRoles, c.wids) {
				t.Errorf("Token(): %+v %v", info, ok)
			}
			if tok2 := token(t, s); tok2 == tok {
				t.Error("two token requests got the same token")
			}
		})
	}
}

// TestForgedToken: a token with an edited payload, or one signed by
// another emulator, is not one this server issued.
func TestForgedToken(t *testing.T) {
	s := start(t, Options{Roles: []string{}})
	other := start(t, Options{TenantID: s.TenantID(), ClientID: s.ClientID()})
	tok := token(t, s)
	parts := strings.Split(tok, ".")
	cl := claimsOf(t, tok)
	cl["roles"] = json.RawMessage(`["User.ReadWrite.All"]`)
	raw, _ := json.Marshal(cl)
	for name, forged := range map[string]string{
		"edited payload":      parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2],
		"another authority's": token(t, other),
	} {
		a := call(t, s, "GET", "/v1.0/users", bearer(forged), nil, false)
		if a.status != 401 || a.errorCode() != "InvalidAuthenticationToken" {
			t.Errorf("%s token: %d %s, want 401", name, a.status, a.body)
		}
	}
}

// TestPermissions: Graph answers 403 Authorization_RequestDenied to reads
// and writes the token's roles and wids do not allow, top-level and in
// $batch items.
func TestPermissions(t *testing.T) {
	cases := []struct {
		name       string
		roles      []string
		wids       []string
		read, save int
	}{
		{"defaults", nil, nil, 200, 204},
		{"read only", []string{"User.Read.All"}, nil, 200, 403},
		{"directory read-write", []string{"Directory.ReadWrite.All"}, nil, 200, 204},
		{"no permission", []string{}, nil, 403, 403},
		{"unrelated permission", []string{"Mail.Send"}, nil, 403, 403},
		{"no directory role", nil, []string{}, 200, 403},
		{"global administrator", nil, []string{RoleGlobalAdministrator}, 200, 204},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := start(t, Options{Roles: c.roles, DirectoryRoles: c.wids, Users: []User{{UserPrincipalName: "ada@contoso.example"}}})
			id := s.Users()[0].ID
			tok := token(t, s)
			a := call(t, s, "GET", "/v1.0/users?$select=id,authorizationInfo", bearer(tok), nil, false)
			if a.status != c.read || (c.read == 403 && a.errorCode() != "Authorization_RequestDenied") {
				t.Errorf("GET: %d %s, want %d", a.status, a.body, c.read)
			}
			a = call(t, s, "PATCH", "/v1.0/users/"+id, jsonHeader(tok), patchBody("X509:<PN>ada@contoso.example"), false)
			if a.status != c.save || (c.save == 403 && a.errorCode() != "Authorization_RequestDenied") {
				t.Errorf("PATCH: %d %s, want %d", a.status, a.body, c.save)
			}
			b := call(t, s, "POST", "/v1.0/$batch", jsonHeader(tok), batchBody(
				getItem("1", "/users/"+id),
				map[string]any{"id": "2", "method": "PATCH", "url": "/users/" + id, "headers": map[string]string{"Content-Type": "application/json"},
					"body": json.RawMessage(patchBody())},
			), false)
			var env struct {
				Responses []struct {
					ID     string `json:"id"`
					Status int    `json:"status"`
				} `json:"responses"`
			}
			if err := json.Unmarshal(b.body, &env); err != nil || b.status != 200 {
				t.Fatalf("$batch: %d %s", b.status, b.body)
			}
			got := map[string]int{}
			for _, r := range env.Responses {
				got[r.ID] = r.Status
			}
			if got["1"] != c.read || got["2"] != c.save {
				t.Errorf("$batch items: %v, want 1:%d 2:%d", got, c.read, c.save)
			}
			if want := map[bool]int{true: 2, false: 0}[c.save == 204]; s.Writes() != want {
				t.Errorf("%d writes, want %d", s.Writes(), want)
			}
			if c.save == 403 {
				if u, _ := s.User(id); len(u.CertificateUserIDs) != 0 {
					t.Errorf("refused writes changed the user: %v", u.CertificateUserIDs)
				}
			}
		})
	}
}

// TestSetDirectoryRoles: a role assigned later reaches new tokens only.
func TestSetDirectoryRoles(t *testing.T) {
	s := start(t, Options{DirectoryRoles: []string{}})
	before := token(t, s)
	s.SetDirectoryRoles([]string{RolePrivilegedAuthenticationAdministrator})
	after := token(t, s)
	if _, ok := claimsOf(t, before)["wids"]; ok {
		t.Error("the earlier token has a wids claim")
	}
	if got := claimList(claimsOf(t, after), "wids"); !slices.Equal(got, []string{RolePrivilegedAuthenticationAdministrator}) {
		t.Errorf("new token's wids %v", got)
	}
}
