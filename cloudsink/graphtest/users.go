package graphtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Limits of user.authorizationInfo.certificateUserIds.
const (
	maxCertificateUserIDs = 10
	maxCertificateUserID  = 1024
)

// onPremMessage is Graph's refusal of a write to a user Entra Connect syncs.
const onPremMessage = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."

// op is one Graph operation: a top-level request or a $batch item.
type op struct {
	method   string
	path     string // below /v1.0, e.g. /users/{id}
	rawQuery string
	header   http.Header
	body     []byte
	perms    TokenInfo // the bearer token's grants
}

// pageState is what a $skiptoken stands for.
type pageState struct {
	offset int
	query  string // the listing's other parameters, which must not change
}

// serveGraph answers /v1.0/...: the bearer token first, then $batch or one
// operation. For a $batch it also returns the envelope ID and item log.
func (s *Server) serveGraph(r *http.Request, body []byte, gz bool) (response, string, []Request) {
	perms, resp, ok := s.authorize(r.Header)
	if !ok {
		return resp, "", nil
	}
	rel := strings.TrimPrefix(r.URL.Path, "/v1.0")
	if rel == "/$batch" {
		if r.Method != http.MethodPost {
			return graphError(http.StatusMethodNotAllowed, "BadRequest", "$batch takes POST only.", r.Header), "", nil
		}
		return s.batch(r, body, gz, perms)
	}
	return s.operate(op{method: r.Method, path: rel, rawQuery: r.URL.RawQuery, header: r.Header, body: body, perms: perms}), "", nil
}

// injectFault spends one unit of the Throttle or Fail knob.
func (s *Server) injectFault(h http.Header) (response, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.throttleN > 0 {
		s.throttleN--
		return throttled(s.throttleAfter, h), true
	}
	if s.failN > 0 {
		s.failN--
		return failure(s.failStatus, h), true
	}
	return response{}, false
}

func (s *Server) operate(o op) response {
	if resp, ok := s.injectFault(o.header); ok {
		return resp
	}
	q, err := url.ParseQuery(o.rawQuery)
	if err != nil {
		return graphError(http.StatusBadRequest, "BadRequest", "Invalid query string: "+err.Error(), o.header)
	}
	segs := strings.Split(strings.Trim(o.path, "/"), "/")
	if !strings.EqualFold(segs[0], "users") || len(segs) > 2 {
		return graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", o.path), o.header)
	}
	if resp, ok := permitted(o); !ok {
		return resp
	}
	switch {
	case len(segs) == 1 && o.method == http.MethodGet:
		return s.listUsers(q, o.header)
	case len(segs) == 2 && o.method == http.MethodGet:
		return s.getUser(segs[1], q, o.header)
	case len(segs) == 2 && o.method == http.MethodPatch:
		return s.patchUser(segs[1], q, o.header, o.body)
	}
	return graphError(http.StatusMethodNotAllowed, "BadRequest", fmt.Sprintf("Specified HTTP method %s is not allowed for the request target %s.", o.method, o.path), o.header)
}

// checkQuery refuses query options outside allowed and repeated ones.
func checkQuery(q url.Values, h http.Header, allowed ...string) (response, bool) {
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return graphError(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Query option '%s' is not supported by the emulator for this request (supported: %s).", k, strings.Join(allowed, ", ")), h), false
		}
		if len(vs) != 1 {
			return graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Query option '%s' was specified more than once, but it must be specified at most once.", k), h), false
		}
	}
	return response{}, true
}

func parseSelect(q url.Values, h http.Header) ([]string, response, bool) {
	raw, ok := q["$select"]
	if !ok {
		return defaultSelect, response{}, true
	}
	var out []string
	for _, name := range strings.Split(raw[0], ",") {
		name = strings.TrimSpace(name)
		p, known := canonicalProp(name)
		if !known {
			return nil, graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.user'.", name), h), false
		}
		out = append(out, p)
	}
	return out, response{}, true
}

// project renders a user with the selected properties; id is always there,
// unset values are null, as Graph writes them.
func project(u *User, sel []string) map[string]any {
	out := map[string]any{"id": u.ID}
	str := func(v string) any {
		if v == "" {
			return nil
		}
		return v
	}
	for _, p := range sel {
		switch p {
		case "userPrincipalName":
			out[p] = str(u.UserPrincipalName)
		case "mail":
			out[p] = str(u.Mail)
		case "onPremisesImmutableId":
			out[p] = str(u.OnPremisesImmutableID)
		case "onPremisesSyncEnabled":
			if u.OnPremisesSyncEnabled {
				out[p] = true
			} else {
				out[p] = nil
			}
		case "authorizationInfo":
			ids := append([]string{}, u.CertificateUserIDs...)
			out[p] = map[string]any{"certificateUserIds": ids}
		}
	}
	return out
}

func (s *Server) listUsers(q url.Values, h http.Header) response {
	if resp, ok := checkQuery(q, h, "$select", "$filter", "$top", "$skiptoken"); !ok {
		return resp
	}
	sel, resp, ok := parseSelect(q, h)
	if !ok {
		return resp
	}
	var f *filter
	if raw, ok := q["$filter"]; ok {
		parsed, qerr := parseFilter(raw[0])
		if qerr != nil {
			return graphError(http.StatusBadRequest, qerr.code, qerr.message, h)
		}
		f = &parsed
	}
	top := 100
	if raw, ok := q["$top"]; ok {
		n, err := strconv.Atoi(raw[0])
		if err != nil || n < 1 || n > 999 {
			return graphError(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", raw[0]), h)
		}
		top = n
	}
	rest := url.Values{}
	for k, v := range q {
		if k != "$skiptoken" {
			rest[k] = v
		}
	}
	fingerprint := rest.Encode()

	s.mu.Lock()
	defer s.mu.Unlock()
	offset := 0
	if raw, ok := q["$skiptoken"]; ok {
		st, known := s.skipTokens[raw[0]]
		if !known || st.query != fingerprint {
			return graphError(http.StatusBadRequest, "Request_BadRequest", "Invalid $skiptoken: it is unknown or was issued for a different query.", h)
		}
		offset = st.offset
	}
	matched := s.matchLocked(f)
	value := []any{}
	end := min(offset+top, len(matched))
	for _, u := range matched[min(offset, len(matched)):end] {
		value = append(value, project(u, sel))
	}
	body := map[string]any{
		"@odata.context": s.url + "/v1.0/$metadata#users(" + strings.Join(sel, ",") + ")",
		"value":          value,
	}
	if end < len(matched) {
		tok := randomToken(16)
		s.skipTokens[tok] = pageState{offset: end, query: fingerprint}
		next := url.Values{}
		for k, v := range rest {
			next[k] = v
		}
		next.Set("$skiptoken", tok)
		body["@odata.nextLink"] = s.url + "/v1.0/users?" + next.Encode()
	}
	return jsonResponse(http.StatusOK, body)
}

// matchLocked lists the users f matches (all with no filter), in
// listing order. Filters on id, userPrincipalName and mail go through
// the indexes: a benchmark's 100,000 lookups must not scan the tenant
// each.
func (s *Server) matchLocked(f *filter) []*User {
	var cands []*User
	switch {
	case f == nil:
		return s.users
	case f.prop == "id" || f.prop == "userPrincipalName":
		for _, v := range f.values {
			if u := s.byKey[strings.ToLower(v)]; u != nil {
				cands = append(cands, u)
			}
		}
	case f.prop == "mail":
		for _, v := range f.values {
			cands = append(cands, s.byMail[strings.ToLower(v)]...)
		}
	default:
		cands = s.users
	}
	var matched []*User
	for _, u := range cands {
		if f.match(u) && !slices.Contains(matched, u) {
			matched = append(matched, u)
		}
	}
	slices.SortFunc(matched, func(a, b *User) int { return s.pos[strings.ToLower(a.ID)] - s.pos[strings.ToLower(b.ID)] })
	return matched
}

// findLocked finds a user by ID or userPrincipalName, as /users/{key} does.
func (s *Server) findLocked(key string) *User {
	return s.byKey[strings.ToLower(key)]
}

func notFound(key string, h http.Header) response {
	return graphError(http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", key), h)
}

func (s *Server) getUser(key string, q url.Values, h http.Header) response {
	if resp, ok := checkQuery(q, h, "$select"); !ok {
		return resp
	}
	sel, resp, ok := parseSelect(q, h)
	if !ok {
		return resp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.findLocked(key)
	if u == nil {
		return notFound(key, h)
	}
	body := project(u, sel)
	body["@odata.context"] = s.url + "/v1.0/$metadata#users(" + strings.Join(sel, ",") + ")/$entity"
	return jsonResponse(http.StatusOK, body)
}

func badRequest(h http.Header, format string, args ...any) response {
	return graphError(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf(format, args...), h)
}

// patchUser accepts authorizationInfo.certificateUserIds only, with Graph's
// rules on it: at most 10 values of at most 1024 characters, no repeats,
// none held by another user, and no writes to users Entra Connect syncs.
func (s *Server) patchUser(key string, q url.Values, h http.Header, body []byte) response {
	if len(q) > 0 {
		return badRequest(h, "PATCH /users/{id} takes no query options.")
	}
	if mt, _, err := mime.ParseMediaType(h.Get("Content-Type")); err != nil || mt != "application/json" {
		return graphError(http.StatusUnsupportedMediaType, "BadRequest", fmt.Sprintf("Content-Type '%s' is not supported; send application/json.", h.Get("Content-Type")), h)
	}
	ids, resp, ok := parseUserPatch(body, h)
	if !ok {
		return resp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.findLocked(key)
	if u == nil {
		return notFound(key, h)
	}
	if u.OnPremisesSyncEnabled {
		return badRequest(h, "%s", onPremMessage)
	}
	if len(ids) > maxCertificateUserIDs {
		return badRequest(h, "Invalid value specified for property 'certificateUserIds' of resource 'User': it holds at most %d values, the request has %d.", maxCertificateUserIDs, len(ids))
	}
	seen := map[string]bool{}
	for i, v := range ids {
		switch {
		case v == "":
			return badRequest(h, "Invalid value specified for property 'certificateUserIds' of resource 'User': value %d is empty.", i+1)
		case len(v) > maxCertificateUserID:
			return badRequest(h, "Invalid value specified for property 'certificateUserIds' of resource 'User': value %d is %d characters long, the limit is %d.", i+1, len(v), maxCertificateUserID)
		case seen[strings.ToLower(v)]:
			return badRequest(h, "Invalid value specified for property 'certificateUserIds' of resource 'User': the value '%s' appears more than once.", v)
		}
		seen[strings.ToLower(v)] = true
	}
	for _, v := range ids {
		if other := s.owners[strings.ToLower(v)]; other != nil && other != u {
			return badRequest(h, "Another object with the same value for property certificateUserIds already exists: '%s'.", other.certificateUserID(v))
		}
	}
	s.unindexLocked(u)
	u.CertificateUserIDs = append([]string(nil), ids...)
	s.indexLocked(u)
	s.writes++
	return response{status: http.StatusNoContent, header: http.Header{}}
}

// certificateUserID returns the user's own spelling of v.
func (u *User) certificateUserID(v string) string {
	for _, x := range u.CertificateUserIDs {
		if strings.EqualFold(x, v) {
			return x
		}
	}
	return v
}

// parseUserPatch reads {"authorizationInfo":{"certificateUserIds":[...]}},
// with the @odata.type annotations the SDK adds, and nothing else.
func parseUserPatch(body []byte, h http.Header) ([]string, response, bool) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, badRequest(h, "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."), false
	}
	switch k := strayKey(top, "authorizationInfo", "#microsoft.graph.user"); k {
	case "":
	case "@odata.type":
		return nil, badRequest(h, "The @odata.type of the payload is %s, not #microsoft.graph.user.", top[k]), false
	default:
		return nil, badRequest(h, "Property '%s' cannot be updated through the emulator: it accepts authorizationInfo.certificateUserIds only.", k), false
	}
	raw, ok := top["authorizationInfo"]
	if !ok {
		return nil, badRequest(h, "The payload has no authorizationInfo; the emulator accepts authorizationInfo.certificateUserIds only."), false
	}
	var ai map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ai); err != nil || ai == nil {
		return nil, badRequest(h, "authorizationInfo must be an object."), false
	}
	switch k := strayKey(ai, "certificateUserIds", "#microsoft.graph.authorizationInfo"); k {
	case "":
	case "@odata.type":
		return nil, badRequest(h, "The @odata.type of authorizationInfo is %s, not #microsoft.graph.authorizationInfo.", ai[k]), false
	default:
		return nil, badRequest(h, "Property 'authorizationInfo.%s' does not exist on type 'microsoft.graph.authorizationInfo'.", k), false
	}
	rawIDs, ok := ai["certificateUserIds"]
	if !ok || bytes.Equal(bytes.TrimSpace(rawIDs), []byte("null")) {
		return nil, badRequest(h, "authorizationInfo.certificateUserIds must be an array of strings."), false
	}
	var ids []string
	if err := json.Unmarshal(rawIDs, &ids); err != nil {
		return nil, badRequest(h, "authorizationInfo.certificateUserIds must be an array of strings: %v", err), false
	}
	return ids, response{}, true
}

// strayKey returns a key of obj that is neither allowed nor an @odata.type
// naming odataType, or "" when there is none.
func strayKey(obj map[string]json.RawMessage, allowed, odataType string) string {
	for k, v := range obj {
		if k != allowed && !(k == "@odata.type" && jsonStringIs(v, odataType)) {
			return k
		}
	}
	return ""
}

func jsonStringIs(raw json.RawMessage, want string) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil && s == want
}
