package exotest

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// payload decodes a JWT's claims without verifying them.
func payload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT: %d segments", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func roles(c map[string]any) []string {
	var out []string
	list, _ := c["roles"].([]any)
	for _, r := range list {
		s, _ := r.(string)
		out = append(out, s)
	}
	return out
}

// TestRoles: Exchange tokens carry the mount's roles, and InvokeCommand
// wants Exchange.ManageAsApp among them.
func TestRoles(t *testing.T) {
	cases := []struct {
		name   string
		roles  []string
		claim  []string
		status int
	}{
		{"default", nil, []string{PermissionManageAsApp}, 200},
		{"explicit", []string{"Exchange.ManageAsApp", "full_access_as_app"}, []string{"Exchange.ManageAsApp", "full_access_as_app"}, 200},
		{"other role only", []string{"full_access_as_app"}, []string{"full_access_as_app"}, 401},
		{"none", []string{}, nil, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := startWith(t, Options{Roles: c.roles, Mailboxes: []Mailbox{{UserPrincipalName: "ada@contoso.example"}}})
			claims := payload(t, e.exo)
			if got := roles(claims); !slices.Equal(got, c.claim) {
				t.Errorf("roles claim %v, want %v", got, c.claim)
			}
			if aud, _ := claims["aud"].(string); aud != "https://outlook.office365.com" {
				t.Errorf("aud %q", aud)
			}
			if g := roles(payload(t, e.graph)); !slices.Equal(g, []string{"User.ReadWrite.All"}) {
				t.Errorf("the Graph token's roles %v: Exchange's roles leaked into it", g)
			}
			a := e.do(t, call{body: cmdlet("Get-Mailbox", map[string]any{"ResultSize": 1})})
			if a.status != c.status {
				t.Errorf("Get-Mailbox: %d %v, want %d", a.status, a.body, c.status)
			}
		})
	}
}

// TestForgedClaims: a token whose payload was edited to add the role is
// not one the authority issued, and is refused.
func TestForgedClaims(t *testing.T) {
	e := startWith(t, Options{Roles: []string{}})
	parts := strings.Split(e.exo, ".")
	claims := payload(t, e.exo)
	claims["roles"] = []string{PermissionManageAsApp}
	raw, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2]
	a := e.do(t, call{body: cmdlet("Get-Mailbox", nil), header: map[string]string{"Authorization": "Bearer " + forged}})
	if a.status != 401 || a.errorType() != "InvalidAuthenticationToken" {
		t.Errorf("forged token: %d %q, want 401 InvalidAuthenticationToken", a.status, a.errorType())
	}
}
