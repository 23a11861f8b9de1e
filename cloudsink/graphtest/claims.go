package graphtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Directory role template IDs (Entra built-in roles) the emulator knows.
// An app-only token lists the roles assigned to the app's service
// principal in its wids claim (see msgraph-sdk-powershell#1782 for a
// decoded app-only token that carries one).
const (
	RolePrivilegedAuthenticationAdministrator = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
	RoleExchangeAdministrator                 = "29232cdf-9323-42fd-ade2-1d097af3e4de"
	RoleGlobalAdministrator                   = "62e90394-69f5-4237-9190-012177145e10"
)

// PermissionUserReadWriteAll is the Graph application permission certsync
// needs; the emulator grants it by default.
const PermissionUserReadWriteAll = "User.ReadWrite.All"

// defaultRoles is the Graph `roles` claim when Options.Roles is nil.
func defaultRoles() []string { return []string{PermissionUserReadWriteAll} }

// defaultDirectoryRoles is the `wids` claim when Options.DirectoryRoles is
// nil: what certsync needs for Graph and for Exchange.
func defaultDirectoryRoles() []string {
	return []string{RolePrivilegedAuthenticationAdministrator, RoleExchangeAdministrator}
}

// accessClaims is the payload of the emulator's access tokens: the claims
// of an Entra v1.0 app-only token that certsync reads.
type accessClaims struct {
	Aud      string   `json:"aud"`
	Iss      string   `json:"iss"`
	Iat      int64    `json:"iat"`
	Nbf      int64    `json:"nbf"`
	Exp      int64    `json:"exp"`
	AppID    string   `json:"appid"`
	AppIDAcr string   `json:"appidacr"` // "1" secret, "2" certificate
	IDTyp    string   `json:"idtyp"`
	OID      string   `json:"oid"`
	Sub      string   `json:"sub"`
	TID      string   `json:"tid"`
	UTI      string   `json:"uti"`
	Ver      string   `json:"ver"`
	Roles    []string `json:"roles,omitempty"`
	Wids     []string `json:"wids,omitempty"`
}

// issueJWT encodes claims as a JWS in compact form. The emulator signs
// with HMAC under a key of its own (Entra signs RS256 with keys it
// publishes; nobody verifies the emulator's signature, it recognizes its
// tokens by lookup), so the header says HS256 rather than pretend.
func (s *Server) issueJWT(c accessClaims) string {
	hdr, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "HS256", "kid": "graphtest"})
	// Marshalling a struct of strings and string slices does not fail.
	payload, _ := json.Marshal(c)
	in := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, s.signingKey)
	mac.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// newAccessToken issues a token for resource and records it.
func (s *Server) newAccessToken(resource string, roles []string, certificate bool) string {
	now := time.Now()
	acr := "1"
	if certificate {
		acr = "2"
	}
	s.mu.Lock()
	wids := append([]string(nil), s.directoryRoles...)
	s.mu.Unlock()
	tok := s.issueJWT(accessClaims{
		Aud: resource, Iss: "https://sts.windows.net/" + s.tenantID + "/",
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(tokenLifetime).Unix(),
		AppID: s.clientID, AppIDAcr: acr, IDTyp: "app",
		OID: s.servicePrincipalID, Sub: s.servicePrincipalID, TID: s.tenantID,
		UTI: randomToken(16), Ver: "1.0",
		Roles: roles, Wids: wids,
	})
	s.mu.Lock()
	s.tokens[tok] = TokenInfo{
		Resource: resource, Expires: now.Add(tokenLifetime),
		Roles: append([]string(nil), roles...), DirectoryRoles: wids,
	}
	s.mu.Unlock()
	return tok
}

// rolesFor is the `roles` claim of a token for resource: Graph's app
// permissions, or a mounted service's.
func (s *Server) rolesFor(resource string) []string {
	if isGraphResource(resource, s.url) {
		return append([]string(nil), s.roles...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.mounts {
		for _, r := range m.Resources {
			if strings.EqualFold(strings.TrimSuffix(r, "/"), strings.TrimSuffix(resource, "/")) {
				return append([]string(nil), m.Roles...)
			}
		}
	}
	return nil
}

// SetDirectoryRoles replaces the directory roles assigned to the app's
// service principal (template IDs); tokens issued from now on carry them
// in wids (none: no wids claim). Tokens already issued keep theirs, as
// Entra's do until they expire.
func (s *Server) SetDirectoryRoles(ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.directoryRoles = append([]string{}, ids...)
}

// Graph's application permissions that allow each kind of operation on
// users (app-only), from the permissions of List users and Update user.
func readPermissions() []string {
	return []string{"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
}

func writePermissions() []string { return []string{"User.ReadWrite.All", "Directory.ReadWrite.All"} }

// permitted answers Graph's 403 when the token's roles and wids do not
// allow the operation: reading users needs a read permission; writing
// certificateUserIds needs a write permission and, as Microsoft documents
// for that property, at least the Privileged Authentication Administrator
// role.
func permitted(o op) (response, bool) {
	need := readPermissions()
	if o.method == http.MethodPatch {
		need = writePermissions()
	}
	if !slices.ContainsFunc(o.perms.Roles, func(r string) bool {
		return slices.ContainsFunc(need, func(n string) bool { return strings.EqualFold(r, n) })
	}) {
		return graphError(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", o.header), false
	}
	if o.method == http.MethodPatch && !slices.Contains(o.perms.DirectoryRoles, RolePrivilegedAuthenticationAdministrator) &&
		!slices.Contains(o.perms.DirectoryRoles, RoleGlobalAdministrator) {
		return graphError(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", o.header), false
	}
	return response{}, true
}
