package graphtest

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Mount is another emulated Microsoft service served by the same HTTPS
// server and the same authority, as certsync uses one credential for all
// its cloud targets (exotest mounts Exchange Online this way).
type Mount struct {
	// PathPrefix routes requests to Handler, e.g. "/adminapi/". It must
	// start with "/" and not overlap the authority's or Graph's paths.
	PathPrefix string
	// Resources are the token resources (application ID URIs without
	// "/.default") the service accepts, e.g. "https://outlook.office365.com".
	// The token endpoint issues tokens for them, and Graph refuses those
	// tokens, as it refuses any token for another audience.
	Resources []string
	// Roles are the service's application permissions granted to the app:
	// the roles claim of tokens for Resources (e.g. Exchange.ManageAsApp).
	Roles   []string
	Handler http.Handler
}

// TokenInfo is what the token endpoint issued an access token for.
type TokenInfo struct {
	// Resource is the scope's resource, lower-cased, without "/.default".
	Resource string
	Expires  time.Time
	// Roles and DirectoryRoles are the token's roles and wids claims.
	Roles          []string
	DirectoryRoles []string
}

// Mount adds a service to the server. Requests under m.PathPrefix bypass
// Graph's request log, latency and fault knobs.
func (s *Server) Mount(m Mount) error {
	if !strings.HasPrefix(m.PathPrefix, "/") || len(m.PathPrefix) < 2 || m.Handler == nil {
		return fmt.Errorf("graphtest: mount %q: needs a path prefix below / and a handler", m.PathPrefix)
	}
	if strings.HasPrefix(m.PathPrefix, "/v1.0") || strings.HasPrefix("/"+s.tenantID, strings.TrimSuffix(m.PathPrefix, "/")) {
		return fmt.Errorf("graphtest: mount %q: overlaps Graph or the authority", m.PathPrefix)
	}
	for _, res := range m.Resources {
		if isGraphResource(res, s.url) {
			return fmt.Errorf("graphtest: mount %q: resource %s is Graph's", m.PathPrefix, res)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.mounts {
		if strings.HasPrefix(m.PathPrefix, o.PathPrefix) || strings.HasPrefix(o.PathPrefix, m.PathPrefix) {
			return fmt.Errorf("graphtest: mount %q: overlaps mount %q", m.PathPrefix, o.PathPrefix)
		}
	}
	m.Resources = append([]string(nil), m.Resources...)
	m.Roles = append([]string(nil), m.Roles...)
	s.mounts = append(s.mounts, m)
	return nil
}

// Token reports what an access token was issued for; false when this
// server never issued it. Expiry is the caller's to judge.
func (s *Server) Token(accessToken string) (TokenInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, ok := s.tokens[accessToken]
	return info, ok
}

// mountedResource reports whether res belongs to a mounted service.
func (s *Server) mountedResource(res string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.mounts {
		for _, r := range m.Resources {
			if strings.EqualFold(strings.TrimSuffix(r, "/"), strings.TrimSuffix(res, "/")) {
				return true
			}
		}
	}
	return false
}

func isGraphResource(res, self string) bool {
	for _, g := range append(graphResources, self) {
		if strings.EqualFold(strings.TrimSuffix(res, "/"), g) {
			return true
		}
	}
	return false
}
