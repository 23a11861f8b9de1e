package exotest

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certsync/certsync/mapping"
)

// maxBody bounds request bodies.
const maxBody = 4 << 20

// maxPageSize is the largest page Get-Mailbox listings return, whatever
// Prefer asks for; defaultResultSize is Get-Mailbox's own default.
const (
	maxPageSize       = 1000
	defaultResultSize = 1000
)

// cmdletInput is the body of InvokeCommand.
type cmdletInput struct {
	CmdletInput *struct {
		CmdletName string                     `json:"CmdletName"`
		Parameters map[string]json.RawMessage `json:"Parameters"`
	} `json:"CmdletInput"`
}

// serve checks the request in the order the service does (path, token,
// tenant, headers, body) and runs the cmdlet.
func (s *Server) serve(r *http.Request, rec *Request) response {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var tenant string
	switch {
	case len(segs) == 3 && segs[0] == "adminapi" && strings.EqualFold(segs[2], "InvokeCommand"),
		len(segs) == 4 && segs[0] == "adminapi" && segs[2] == "" && strings.EqualFold(segs[3], "InvokeCommand"):
		return apiError(http.StatusNotFound, "NotFound", "The request URL has no tenant: use /adminapi/beta/{tenantId}/InvokeCommand.")
	case len(segs) == 4 && segs[0] == "adminapi" && segs[1] == "beta" && strings.EqualFold(segs[3], "InvokeCommand"):
		tenant = segs[2]
	default:
		return apiError(http.StatusNotFound, "NotFound", fmt.Sprintf("No HTTP resource was found that matches the request URI '%s'.", r.URL.Path))
	}
	if r.Method != http.MethodPost {
		return apiError(http.StatusMethodNotAllowed, "MethodNotAllowed", "InvokeCommand takes POST only.")
	}
	if resp, ok := s.authorize(r.Header); !ok {
		return resp
	}
	if !strings.EqualFold(tenant, s.TenantID()) && !strings.EqualFold(tenant, s.tenantDomain) {
		return apiError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("The tenant '%s' in the request URL is not the tenant of the access token.", tenant))
	}
	if enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc != "" && enc != "identity" {
		return apiError(http.StatusUnsupportedMediaType, "UnsupportedMediaType", fmt.Sprintf("Content-Encoding '%s' is not supported.", enc))
	}
	if ct := strings.ToLower(r.Header.Get("Content-Type")); !strings.HasPrefix(ct, "application/json") {
		return apiError(http.StatusUnsupportedMediaType, "UnsupportedMediaType", fmt.Sprintf("Content-Type '%s' is not supported; send application/json.", ct))
	}
	if !validAnchor(rec.Anchor) {
		return apiError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("X-AnchorMailbox '%s' is missing or not of the form UPN:<address> or APP:<address>.", rec.Anchor))
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return apiError(http.StatusBadRequest, "BadRequest", "Invalid query string: "+err.Error())
	}
	for k := range q {
		if k != "$select" && k != "$skiptoken" {
			return apiError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("The query parameter '%s' is not supported.", k))
		}
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(raw) > maxBody {
		return apiError(http.StatusBadRequest, "BadRequest", "The request body could not be read or is too large.")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var in cmdletInput
	if err := dec.Decode(&in); err != nil || in.CmdletInput == nil || in.CmdletInput.CmdletName == "" {
		return apiError(http.StatusBadRequest, "BadRequest", "The body must be {\"CmdletInput\":{\"CmdletName\":...,\"Parameters\":{...}}}.")
	}
	ci := in.CmdletInput
	rec.Cmdlet = ci.CmdletName
	for name := range ci.Parameters {
		rec.Parameters = append(rec.Parameters, name)
	}
	slices.Sort(rec.Parameters)
	params := map[string]json.RawMessage{} // lower-cased names, as PowerShell binds them
	for name, v := range ci.Parameters {
		params[strings.ToLower(name)] = v
	}
	if v, ok := params["identity"]; ok {
		_ = json.Unmarshal(v, &rec.Identity)
	}
	if h := r.Header.Get("X-CmdletName"); h != "" && !strings.EqualFold(h, ci.CmdletName) {
		return apiError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("X-CmdletName '%s' does not match the body's cmdlet '%s'.", h, ci.CmdletName))
	}
	if resp, ok := s.injectFault(); ok {
		return resp
	}
	switch strings.ToLower(ci.CmdletName) {
	case "get-mailbox":
		return s.getRecipients(r, tenant, q, params, false)
	case "get-mailuser":
		return s.getRecipients(r, tenant, q, params, true)
	case "set-mailbox":
		return s.setRecipient(params, false)
	case "set-mailuser":
		return s.setRecipient(params, true)
	case "get-smimeconfig":
		return s.getSmimeConfig(tenant, params)
	case "set-smimeconfig":
		return s.setSmimeConfig(params)
	}
	return cmdletError(typeUnknownCmdlet, "The term '%s' is not recognized as a name of a cmdlet, function, script file, or executable program.", ci.CmdletName)
}

func validAnchor(a string) bool {
	rest, ok := strings.CutPrefix(a, "UPN:")
	if !ok {
		rest, ok = strings.CutPrefix(a, "APP:")
	}
	local, domain, at := strings.Cut(rest, "@")
	return ok && at && local != "" && domain != ""
}

// authorize wants a token this authority issued for Exchange, unexpired.
func (s *Server) authorize(h http.Header) (response, bool) {
	tok, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		return apiError(http.StatusUnauthorized, "InvalidAuthenticationToken", "The request has no bearer token."), false
	}
	info, known := s.g.Token(tok)
	switch {
	case !known:
		return apiError(http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is not valid."), false
	case !slices.ContainsFunc(Resources(), func(r string) bool { return strings.EqualFold(r, info.Resource) }):
		return apiError(http.StatusUnauthorized, "InvalidAuthenticationToken", fmt.Sprintf("The access token's audience '%s' is not Exchange Online.", info.Resource)), false
	case time.Now().After(info.Expires):
		return apiError(http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token has expired."), false
	case !slices.ContainsFunc(info.Roles, func(r string) bool { return strings.EqualFold(r, PermissionManageAsApp) }):
		// Exchange's answer to a token without the role is not documented;
		// the text is what its REST API said to such tokens.
		return apiError(http.StatusUnauthorized, "InvalidAuthenticationToken", "The token contains no permissions, or permissions can not be understood."), false
	}
	return response{}, true
}

// checkParams refuses parameters the cmdlet does not have.
func checkParams(params map[string]json.RawMessage, allowed ...string) (response, bool) {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if !slices.Contains(allowed, k) {
			return cmdletError(typeParameter, "A parameter cannot be found that matches parameter name '%s'.", k), false
		}
	}
	return response{}, true
}

func stringParam(params map[string]json.RawMessage, name string) (string, bool, response) {
	raw, present := params[strings.ToLower(name)]
	if !present {
		return "", false, response{}
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil || strings.TrimSpace(v) == "" {
		return "", true, cmdletError(typeParameter, "Cannot bind parameter '%s': the value must be a non-empty string.", name)
	}
	return v, true, response{}
}

// resolveLocked finds the one mailbox (or mail user) an -Identity names:
// a *-Mailbox cmdlet does not see mail users, nor a *-MailUser one
// mailboxes.
func (s *Server) resolveLocked(identity string, mailUser bool) (*Mailbox, response, bool) {
	var ms []*Mailbox
	for _, m := range s.byKey[strings.ToLower(identity)] {
		if m.MailUser == mailUser {
			ms = append(ms, m)
		}
	}
	switch len(ms) {
	case 0:
		return nil, notFound(identity), false
	case 1:
		return ms[0], response{}, true
	}
	return nil, cmdletError(typeAmbiguous, "The operation couldn't be performed because '%s' matches multiple entries.", identity), false
}

// getRecipients is Get-Mailbox, or Get-MailUser with mailUser: one
// recipient by -Identity, or a listing of ResultSize (default 1000) in
// pages of Prefer: odata.maxpagesize (at most 1000), continued by POSTing
// the same body to @odata.nextLink.
func (s *Server) getRecipients(r *http.Request, tenant string, q url.Values, params map[string]json.RawMessage, mailUser bool) response {
	if resp, ok := checkParams(params, "identity", "resultsize"); !ok {
		return resp
	}
	identity, hasIdentity, bad := stringParam(params, "Identity")
	if bad.status != 0 {
		return bad
	}
	resultSize := defaultResultSize
	if raw, ok := params["resultsize"]; ok {
		var n int
		var word string
		switch {
		case json.Unmarshal(raw, &n) == nil && n > 0:
			resultSize = n
		case json.Unmarshal(raw, &word) == nil && strings.EqualFold(word, "Unlimited"):
			resultSize = -1
		default:
			return cmdletError(typeParameter, "Cannot bind parameter 'ResultSize': use a positive number or Unlimited.")
		}
	}
	sel := selected(q.Get("$select"))
	s.mu.Lock()
	defer s.mu.Unlock()
	if hasIdentity {
		if q.Has("$skiptoken") {
			return apiError(http.StatusBadRequest, "BadRequest", "$skiptoken does not apply to a single mailbox.")
		}
		m, resp, ok := s.resolveLocked(identity, mailUser)
		if !ok {
			return resp
		}
		return jsonResponse(http.StatusOK, s.envelope(tenant, []any{project(m, sel)}, nil, ""))
	}
	key := fmt.Sprintf("%v\x00%d\x00%s", mailUser, resultSize, q.Get("$select"))
	offset := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		st, ok := s.pages[tok]
		if !ok || st.key != key {
			return apiError(http.StatusBadRequest, "BadRequest", "The $skiptoken is not valid for this request.")
		}
		offset = st.offset
	}
	var listed []*Mailbox
	for _, m := range s.mailboxes {
		if m.MailUser == mailUser {
			listed = append(listed, m)
		}
	}
	total := len(listed)
	var warnings []string
	if resultSize >= 0 && total > resultSize {
		total = resultSize
		warnings = append(warnings, "There are more results available than are currently displayed. To view them, increase the value for the ResultSize parameter.")
	}
	end := min(offset+pageSize(r.Header.Get("Prefer")), total)
	page := make([]any, 0, max(end-offset, 0))
	for i := offset; i < end; i++ {
		page = append(page, project(listed[i], sel))
	}
	next := ""
	if end < total {
		tok := newGUID()
		s.pages[tok] = pageState{offset: end, key: key}
		v := url.Values{"$skiptoken": {tok}}
		if q.Has("$select") {
			v.Set("$select", q.Get("$select"))
		}
		next = s.URL() + r.URL.Path + "?" + v.Encode()
	}
	return jsonResponse(http.StatusOK, s.envelope(tenant, page, warnings, next))
}

func pageSize(prefer string) int {
	for _, part := range strings.Split(prefer, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "odata.maxpagesize") {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
				return min(n, maxPageSize)
			}
		}
	}
	return maxPageSize
}

func (s *Server) envelope(tenant string, value []any, warnings []string, next string) map[string]any {
	if warnings == nil {
		warnings = []string{}
	}
	out := map[string]any{
		"@odata.context":               s.URL() + "/adminapi/beta/" + tenant + "/$metadata#Collection(Exchange.GenericHashTable)",
		"adminapi.warnings@odata.type": "#Collection(String)",
		"@adminapi.warnings":           warnings,
		"value":                        value,
	}
	if next != "" {
		out["@odata.nextLink"] = next
	}
	return out
}

func selected(sel string) []string {
	if sel == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(sel, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, strings.ToLower(p))
		}
	}
	return out
}

// project is a mailbox as Get-Mailbox returns it: PascalCase properties
// with OData type annotations, byte values as base64 strings.
func project(m *Mailbox, sel []string) map[string]any {
	kind := "UserMailbox"
	if m.MailUser {
		kind = "MailUser"
	}
	addresses := []string{"SMTP:" + m.PrimarySmtpAddress}
	for _, a := range m.EmailAddresses {
		addresses = append(addresses, "smtp:"+a)
	}
	all := map[string]any{
		"Identity":                            m.Identity,
		"Id":                                  m.Identity,
		"Name":                                m.Identity,
		"Alias":                               m.Identity,
		"UserPrincipalName":                   m.UserPrincipalName,
		"PrimarySmtpAddress":                  m.PrimarySmtpAddress,
		"WindowsEmailAddress":                 m.PrimarySmtpAddress,
		"ExternalDirectoryObjectId":           m.ExternalDirectoryObjectID,
		"IsDirSynced":                         m.IsDirSynced,
		"RecipientTypeDetails":                kind,
		"UserCertificate@odata.type":          "#Collection(String)",
		"UserCertificate":                     encodeValues(m.UserCertificate),
		"UserSMimeCertificate@odata.type":     "#Collection(String)",
		"UserSMimeCertificate":                encodeValues(m.UserSMimeCertificate),
		"ExternalDirectoryObjectId@data.type": "System.String",
		"EmailAddresses@odata.type":           "#Collection(String)",
		"EmailAddresses":                      addresses,
	}
	if len(sel) == 0 {
		return all
	}
	out := map[string]any{}
	for k, v := range all {
		name, _, _ := strings.Cut(k, "@")
		if slices.Contains(sel, strings.ToLower(name)) {
			out[k] = v
		}
	}
	return out
}

func encodeValues(vs [][]byte) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = base64.StdEncoding.EncodeToString(v)
	}
	return out
}

// certParams are the Set-Mailbox parameters the emulator writes.
var certParams = []string{"UserCertificate", "UserSMimeCertificate"}

// setRecipient is Set-Mailbox, or Set-MailUser with mailUser.
func (s *Server) setRecipient(params map[string]json.RawMessage, mailUser bool) response {
	if resp, ok := checkParams(params, "identity", "usercertificate", "usersmimecertificate", "confirm",
		"usercertificate@odata.type", "usersmimecertificate@odata.type"); !ok {
		return resp
	}
	identity, hasIdentity, bad := stringParam(params, "Identity")
	if bad.status != 0 {
		return bad
	}
	if !hasIdentity {
		return cmdletError(typeParameter, "Cannot process command because of one or more missing mandatory parameters: Identity.")
	}
	if raw, ok := params["confirm"]; ok {
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return cmdletError(typeParameter, "Cannot bind parameter 'Confirm': the value must be true or false.")
		}
	}
	values := map[string][][]byte{}
	var changed []string
	for _, name := range certParams {
		raw, ok := params[strings.ToLower(name)]
		if !ok {
			if _, annotated := params[strings.ToLower(name)+"@odata.type"]; annotated {
				return cmdletError(typeParameter, "The annotation '%s@odata.type' was sent without the parameter.", name)
			}
			continue
		}
		vs, resp, ok := decodeValues(name, raw, params[strings.ToLower(name)+"@odata.type"])
		if !ok {
			return resp
		}
		values[name] = vs
		changed = append(changed, name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, resp, ok := s.resolveLocked(identity, mailUser)
	if !ok {
		return resp
	}
	if len(changed) == 0 {
		return jsonResponse(http.StatusOK, s.envelope(s.TenantID(), []any{}, []string{
			fmt.Sprintf("The command completed successfully but no settings of '%s' have been modified.", m.Identity),
		}, ""))
	}
	if m.IsDirSynced {
		cmdlet := "Set-Mailbox"
		if mailUser {
			cmdlet = "Set-MailUser"
		}
		return cmdletError(typeWriteScope, "The operation on mailbox \"%s\" failed because it's out of the current user's write scope. The action '"+cmdlet+"', '%s', can't be performed on the object '%s' because the object is being synchronized from your on-premises organization. This action should be performed on the object in your on-premises organization.",
			identity, strings.Join(changed, "', '"), identity)
	}
	if vs, ok := values["UserCertificate"]; ok {
		m.UserCertificate = vs
	}
	if vs, ok := values["UserSMimeCertificate"]; ok {
		m.UserSMimeCertificate = vs
	}
	s.writes++
	resp = jsonResponse(http.StatusOK, s.envelope(s.TenantID(), []any{}, nil, ""))
	resp.isWrite = true
	return resp
}

// The OData types the module gives byte[][] parameters and their items.
const (
	byteArrayCollectionType = "#Collection(Exchange.ByteArrayType)"
	byteArrayType           = "#Exchange.ByteArrayType"
)

// decodeValues reads a certificate collection in the one shape the
// ExchangeOnlineManagement module sends byte[][] parameters: the
// collection annotated "<Param>@odata.type":"#Collection(Exchange.ByteArrayType)",
// each item {"@odata.type":"#Exchange.ByteArrayType","Data":"<base64>"}
// (the item annotation may be left out: the collection's types it). null
// or [] clears it (the module's -Param $null and @()). Plain base64
// strings are refused: that is not what the module sends. At most
// MaxValues values, each an X.509 certificate or a PKCS#7 of them.
func decodeValues(name string, raw, annotation json.RawMessage) ([][]byte, response, bool) {
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil, response{}, true
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, cmdletError(typeParameter, "Cannot bind parameter '%s'. Cannot convert the value to type \"Microsoft.Exchange.Data.MultiValuedProperty`1[System.Byte[]]\": it is not an array.", name), false
	}
	if len(items) == 0 {
		return nil, response{}, true
	}
	var typ string
	if annotation == nil || json.Unmarshal(annotation, &typ) != nil || typ != byteArrayCollectionType {
		return nil, cmdletError(typeParameter, "Cannot bind parameter '%s'. The collection must be annotated '%s@odata.type': '%s'.", name, name, byteArrayCollectionType), false
	}
	if len(items) > MaxValues {
		return nil, cmdletError(typeInvalidValue, "The property '%s' can hold at most %d values; %d were given.", name, MaxValues, len(items)), false
	}
	out := make([][]byte, 0, len(items))
	for i, it := range items {
		dec := json.NewDecoder(bytes.NewReader(it))
		dec.DisallowUnknownFields()
		var item struct {
			Type *string `json:"@odata.type"`
			Data *string `json:"Data"`
		}
		if err := dec.Decode(&item); err != nil || item.Data == nil || (item.Type != nil && *item.Type != byteArrayType) {
			return nil, cmdletError(typeParameter, "Cannot bind parameter '%s'. Value %d is not {\"@odata.type\":\"%s\",\"Data\":\"<base64>\"}.", name, i+1, byteArrayType), false
		}
		der, err := base64.StdEncoding.Strict().DecodeString(*item.Data)
		if err != nil {
			return nil, cmdletError(typeParameter, "Cannot bind parameter '%s'. Value %d is not a base64 string: %v.", name, i+1, err), false
		}
		if _, err := x509.ParseCertificate(der); err != nil {
			// Outlook's userSMIMECertificate blobs (PKCS#7) travel whole.
			if _, p7err := mapping.Decode(der); p7err != nil {
				return nil, cmdletError(typeInvalidValue, "The value %d of property '%s' is neither an X.509 certificate (%v) nor a PKCS#7 of certificates (%v).", i+1, name, err, p7err), false
			}
		}
		out = append(out, der)
	}
	return out, response{}, true
}
