package graphtest

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// tokenLifetime is what Entra gives app-only tokens by default.
const tokenLifetime = time.Hour

// clockSkew is the leeway on client assertion times.
const clockSkew = 5 * time.Minute

// graphResources are the resources a client-credentials scope may name:
// every national cloud's Graph (clients keep their environment's scope
// when pointed at the emulator) and the emulator itself.
var graphResources = []string{
	"https://graph.microsoft.com",
	"https://graph.microsoft.us",
	"https://dod-graph.microsoft.us",
	"https://microsoftgraph.chinacloudapi.cn",
}

// serveAuthority answers /{tenant}/... : OpenID configuration, keys, token.
func (s *Server) serveAuthority(r *http.Request, body []byte) response {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) != 4 {
		return entraError(http.StatusNotFound, "invalid_request", 900561, "The endpoint "+r.URL.Path+" does not exist on this authority.")
	}
	tenant, rest := parts[0], strings.Join(parts[1:], "/")
	if tenant != s.tenantID {
		return entraError(http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
	}
	switch {
	case rest == "v2.0/.well-known/openid-configuration" && r.Method == http.MethodGet:
		return jsonResponse(http.StatusOK, s.openIDConfiguration())
	case rest == "discovery/v2.0/keys" && r.Method == http.MethodGet:
		return jsonResponse(http.StatusOK, map[string]any{"keys": []any{}})
	case rest == "oauth2/v2.0/token" && r.Method == http.MethodPost:
		return s.token(r, body)
	}
	return entraError(http.StatusNotFound, "invalid_request", 900561, "The endpoint "+r.Method+" "+r.URL.Path+" does not exist on this authority.")
}

func (s *Server) tokenEndpoint() string {
	return s.url + "/" + s.tenantID + "/oauth2/v2.0/token"
}

func (s *Server) openIDConfiguration() map[string]any {
	base := s.url + "/" + s.tenantID
	return map[string]any{
		"token_endpoint":                        s.tokenEndpoint(),
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     s.url + "/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nbf", "tid"},
		"kerberos_endpoint":                     base + "/kerberos",
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          strings.TrimPrefix(s.url, "https://"),
	}
}

// token is the client-credentials grant with a secret or a certificate
// assertion, the two ways certsync authenticates as an app.
func (s *Server) token(r *http.Request, body []byte) response {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		return entraError(http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded, not '"+ct+"'.")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return entraError(http.StatusBadRequest, "invalid_request", 900144, "The request body is not a valid form: "+err.Error())
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		return entraError(http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'; the emulator supports client_credentials only.", gt))
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		return entraError(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	}
	if clientID != s.clientID {
		return entraError(http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, s.tenantID))
	}
	resource, resp, ok := s.checkScope(form.Get("scope"))
	if !ok {
		return resp
	}
	secret, assertion := form.Get("client_secret"), form.Get("client_assertion")
	switch {
	case secret != "" && assertion != "":
		return entraError(http.StatusBadRequest, "invalid_request", 90014, "The request contains both client_secret and client_assertion; send one.")
	case secret != "":
		if s.clientSecret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(s.clientSecret)) != 1 {
			return entraError(http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+s.clientID+"'.")
		}
	case assertion != "":
		if t := form.Get("client_assertion_type"); t != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			return entraError(http.StatusBadRequest, "invalid_request", 50027, fmt.Sprintf("Invalid client_assertion_type '%s'.", t))
		}
		if code, desc := s.verifyAssertion(assertion, time.Now()); code != 0 {
			return entraError(http.StatusUnauthorized, "invalid_client", code, desc)
		}
	default:
		return entraError(http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	}
	tok := s.newAccessToken(resource, s.rolesFor(resource), assertion != "")
	secs := int(tokenLifetime/time.Second) - 1
	return jsonResponse(http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   tok,
	})
}

// checkScope wants exactly one "<resource>/.default", as Entra does for
// client credentials; OpenID scopes some clients add are tolerated. The
// resource is Graph's (any national cloud's, or the emulator's own URL) or
// a mounted service's; it comes back lower-cased.
func (s *Server) checkScope(scope string) (string, response, bool) {
	var resources []string
	for _, sc := range strings.Fields(scope) {
		switch sc {
		case "openid", "profile", "offline_access":
			continue
		}
		resources = append(resources, sc)
	}
	if len(resources) != 1 || !strings.HasSuffix(resources[0], "/.default") {
		return "", entraError(http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope '%s' is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)), false
	}
	res := strings.TrimSuffix(resources[0], "/.default")
	if isGraphResource(res, s.url) || s.mountedResource(res) {
		return strings.ToLower(res), response{}, true
	}
	return "", entraError(http.StatusBadRequest, "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant.", res)), false
}

// verifyAssertion checks a client assertion JWT the way Entra does for
// certificate credentials: a registered certificate by thumbprint, an RSA
// signature (RS256 or PS256), aud = token endpoint, iss = sub = client,
// and a current time window. A refusal comes with its AADSTS code and
// description; an accepted assertion returns (0, "").
func (s *Server) verifyAssertion(jwt string, now time.Time) (int, string) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return 50027, ("Invalid JWT token. The token is not in JWS compact format.")
	}
	var hdr struct {
		Alg     string `json:"alg"`
		X5t     string `json:"x5t"`
		X5tS256 string `json:"x5t#S256"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return 50027, fmt.Sprintf("Invalid JWT token header: %v", err)
	}
	var claims struct {
		Aud string      `json:"aud"`
		Iss string      `json:"iss"`
		Sub string      `json:"sub"`
		Exp json.Number `json:"exp"`
		Nbf json.Number `json:"nbf"`
		Jti string      `json:"jti"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return 50027, fmt.Sprintf("Invalid JWT token payload: %v", err)
	}
	cert := s.findCert(hdr.X5t, hdr.X5tS256)
	if cert == nil {
		return 700027, fmt.Sprintf("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s%s']", hdr.X5t, hdr.X5tS256)
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return 700027, fmt.Sprintf("Client assertion failed signature validation: the certificate %s is outside its validity period.", cert.Subject)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return 700027, ("Client assertion failed signature validation: the registered certificate has no RSA key.")
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[2], "="))
	if err != nil {
		return 700027, ("Client assertion failed signature validation: the signature is not base64url.")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch hdr.Alg {
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	default:
		return 700027, fmt.Sprintf("Client assertion failed signature validation: algorithm '%s' is not supported (RS256, PS256).", hdr.Alg)
	}
	if err != nil {
		return 700027, ("Client assertion failed signature validation.")
	}
	if claims.Aud != s.tokenEndpoint() {
		return 700212, fmt.Sprintf("No matching federated identity record found for presented assertion audience '%s'; expected '%s'.", claims.Aud, s.tokenEndpoint())
	}
	if claims.Iss != s.clientID || claims.Sub != s.clientID {
		return 700021, fmt.Sprintf("Client assertion application identifier doesn't match 'client_id' parameter: iss '%s', sub '%s', client '%s'.", claims.Iss, claims.Sub, s.clientID)
	}
	exp, err := claims.Exp.Int64()
	if err != nil {
		return 700024, ("Client assertion has no valid 'exp' claim.")
	}
	if now.After(time.Unix(exp, 0).Add(clockSkew)) {
		return 700024, ("Client assertion is not within its valid time range: it has expired.")
	}
	if claims.Nbf != "" {
		nbf, err := claims.Nbf.Int64()
		if err != nil || now.Add(clockSkew).Before(time.Unix(nbf, 0)) {
			return 700024, ("Client assertion is not within its valid time range: it is not yet valid.")
		}
	}
	return 0, ""
}

func (s *Server) findCert(x5t, x5tS256 string) *x509.Certificate {
	for _, c := range s.clientCerts {
		if x5tS256 != "" {
			h := sha256.Sum256(c.Raw)
			if thumbEqual(x5tS256, h[:]) {
				return c
			}
		}
		if x5t != "" {
			h := sha1.Sum(c.Raw)
			if thumbEqual(x5t, h[:]) {
				return c
			}
		}
	}
	return nil
}

// thumbEqual compares a JWT thumbprint header with a digest. RFC 7515 says
// base64url; MSAL for Go sends standard base64, so both are accepted.
func thumbEqual(header string, digest []byte) bool {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(strings.TrimRight(header, "=")); err == nil && bytes.Equal(b, digest) {
			return true
		}
	}
	return false
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// authorize checks the bearer token of a Graph request.
func (s *Server) authorize(h http.Header) (TokenInfo, response, bool) {
	auth := h.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		return TokenInfo{}, graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.", h), false
	}
	s.mu.Lock()
	info, known := s.tokens[strings.TrimSpace(tok)]
	s.mu.Unlock()
	switch {
	case !known || !isGraphResource(info.Resource, s.url):
		return TokenInfo{}, graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.", h), false
	case time.Now().After(info.Expires):
		return TokenInfo{}, graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.", h), false
	}
	return info, response{}, true
}
