package cloudsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/microsoftgraph/msgraph-sdk-go/users"
)

// RefusalSynced is Account.Refusal for users Entra Connect syncs.
const RefusalSynced = "synced from on-premises by Entra Connect (onPremisesSyncEnabled): Graph does not let other clients change its certificateUserIds"

// userSelect is every property certsync reads; authorizationInfo and the
// onPremises ones are outside Graph's default set and must be asked for.
func userSelect() []string {
	return []string{"id", "userPrincipalName", "mail", "onPremisesImmutableId", "onPremisesSyncEnabled", "authorizationInfo"}
}

// lookupQuery is one request of a lookup: a user by id, or the users whose
// prop is in values.
type lookupQuery struct {
	prop   string
	values []string
	req    batchRequest
}

// Lookup resolves accounts by id (GET /users/{id}) or by a filter on
// onPremisesImmutableId, mail or userPrincipalName (15 values per `in`),
// all sent in $batches. mail and userPrincipalName match without regard
// to case, as the directory compares them.
func (g *Graph) Lookup(ctx context.Context, lookups []Lookup) (map[string]LookupResult, error) {
	out := make(map[string]LookupResult, len(lookups))
	want := map[string][]string{} // prop -> distinct normalized values, first-seen order
	seen := map[string]bool{}
	for _, l := range lookups {
		if err := checkLookup(l); err != nil {
			out[l.Key] = LookupResult{Err: err}
			continue
		}
		k := l.Property + "\x00" + normalize(l.Property, l.Value)
		if !seen[k] {
			seen[k] = true
			want[l.Property] = append(want[l.Property], l.Value)
		}
	}
	var queries []lookupQuery
	for _, prop := range []string{"id", "onPremisesImmutableId", "mail", "userPrincipalName"} {
		vals := want[prop]
		if prop == "id" {
			for _, v := range vals {
				q, err := g.byIDQuery(ctx, v)
				if err != nil {
					return nil, err
				}
				queries = append(queries, q)
			}
			continue
		}
		for start := 0; start < len(vals); start += filterInLimit {
			q, err := g.filterQuery(ctx, prop, vals[start:min(start+filterInLimit, len(vals))])
			if err != nil {
				return nil, err
			}
			queries = append(queries, q)
		}
	}
	reqs := make([]batchRequest, len(queries))
	for i, q := range queries {
		reqs[i] = q.req
	}
	outs := g.runAll(ctx, reqs)
	found := map[string]LookupResult{} // prop + normalized value -> result
	for i, q := range queries {
		if outs[i].err != nil {
			// Nothing can be trusted when Graph could not be asked.
			return nil, fmt.Errorf("cloudsink: graph: lookup by %s: %w", q.prop, outs[i].err)
		}
		for v, res := range resolve(q, outs[i].resp) {
			found[q.prop+"\x00"+v] = res
		}
	}
	for _, l := range lookups {
		if _, done := out[l.Key]; done {
			continue
		}
		res, ok := found[l.Property+"\x00"+normalize(l.Property, l.Value)]
		if !ok {
			res = LookupResult{Err: fmt.Errorf("cloudsink: graph: lookup %s (%s %q): no answer for it", l.Key, l.Property, l.Value)}
		}
		if res.Account != nil {
			// Keys that asked for the same value get accounts of their own.
			acc := *res.Account
			acc.Values = map[string][]string{TargetCertificateUserIDs: append([]string{}, acc.Values[TargetCertificateUserIDs]...)}
			res.Account = &acc
		}
		out[l.Key] = res
	}
	return out, nil
}

func checkLookup(l Lookup) error {
	switch l.Property {
	case "id", "onPremisesImmutableId", "mail", "userPrincipalName":
	default:
		return fmt.Errorf("cloudsink: graph: lookup %s: property %q is not one of id, onPremisesImmutableId, mail, userPrincipalName", l.Key, l.Property)
	}
	if l.Value == "" {
		return fmt.Errorf("cloudsink: graph: lookup %s: empty %s", l.Key, l.Property)
	}
	if l.Property != "id" && len(l.Value) > filterValueLimit {
		return fmt.Errorf("cloudsink: graph: lookup %s: %s %q is longer than the %d characters Graph filters on", l.Key, l.Property, l.Value, filterValueLimit)
	}
	return nil
}

// normalize is the form values are matched in: the directory compares
// mail, userPrincipalName and object IDs without regard to case; the
// immutable ID is base64, where case matters.
func normalize(prop, v string) string {
	if prop == "onPremisesImmutableId" {
		return v
	}
	return strings.ToLower(v)
}

func (g *Graph) byIDQuery(ctx context.Context, id string) (lookupQuery, error) {
	ri, err := g.users.ByUserId(id).ToGetRequestInformation(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: userSelect()},
	})
	if err != nil {
		return lookupQuery{}, fmt.Errorf("cloudsink: graph: build GET /users/%s: %w", id, err)
	}
	req, err := g.itemRequest(ri, "/users/"+id)
	return lookupQuery{prop: "id", values: []string{id}, req: req}, err
}

func (g *Graph) filterQuery(ctx context.Context, prop string, values []string) (lookupQuery, error) {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	filter := prop + " in (" + strings.Join(quoted, ",") + ")"
	// Fifteen values match far fewer than 999 users unless something is
	// badly wrong; resolve notices a further page all the same.
	top := int32(999)
	ri, err := g.users.ToGetRequestInformation(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Filter: &filter, Select: userSelect(), Top: &top},
	})
	if err != nil {
		return lookupQuery{}, fmt.Errorf("cloudsink: graph: build GET /users?$filter=%s: %w", filter, err)
	}
	req, err := g.itemRequest(ri, "/users?$filter="+prop+" in (…)")
	return lookupQuery{prop: prop, values: values, req: req}, err
}

// resolve turns one answer into results by normalized value.
func resolve(q lookupQuery, r batchResponse) map[string]LookupResult {
	out := make(map[string]LookupResult, len(q.values))
	all := func(res LookupResult) map[string]LookupResult {
		for _, v := range q.values {
			out[normalize(q.prop, v)] = res
		}
		return out
	}
	if q.prop == "id" {
		switch {
		case r.Status == http.StatusNotFound:
			return all(LookupResult{Err: ErrNotFound})
		case r.Status != http.StatusOK:
			return all(LookupResult{Err: itemError(q.req, r)})
		}
		u, err := parseUser(r.Body)
		if err != nil {
			return all(LookupResult{Err: fmt.Errorf("cloudsink: graph: GET %s: %w", q.req.errPath, err)})
		}
		if !strings.EqualFold(deref(u.ID), q.values[0]) {
			// /users/{x} also resolves a userPrincipalName; a lookup by id
			// wants the object with that id.
			return all(LookupResult{Err: ErrNotFound})
		}
		return all(accountResult(u))
	}
	if r.Status != http.StatusOK {
		return all(LookupResult{Err: itemError(q.req, r)})
	}
	list, next, err := parseUserList(r.Body)
	if err != nil {
		return all(LookupResult{Err: fmt.Errorf("cloudsink: graph: GET %s: %w", q.req.errPath, err)})
	}
	byValue := make(map[string][]*graphUser, len(list))
	for _, u := range list {
		if have := propValue(u, q.prop); have != "" {
			k := normalize(q.prop, have)
			byValue[k] = append(byValue[k], u)
		}
	}
	for _, v := range q.values {
		k := normalize(q.prop, v)
		matches := byValue[k]
		var res LookupResult
		switch {
		case len(matches) > 1:
			res = LookupResult{Err: ErrAmbiguous}
		case next != "":
			// Another page could hold this value's match, or a second one.
			res = LookupResult{Err: fmt.Errorf("cloudsink: graph: GET %s: more than 999 users matched; the answer for %q is incomplete", q.req.errPath, v)}
		case len(matches) == 0:
			res = LookupResult{Err: ErrNotFound}
		default:
			res = accountResult(matches[0])
		}
		out[k] = res
	}
	return out
}

func propValue(u *graphUser, prop string) string {
	switch prop {
	case "onPremisesImmutableId":
		return deref(u.OnPremisesImmutableID)
	case "mail":
		return deref(u.Mail)
	case "userPrincipalName":
		return deref(u.UserPrincipalName)
	}
	return deref(u.ID)
}

// accountResult builds the Account. An answer without authorizationInfo is
// refused rather than read as "no values": the merge before a write would
// then drop values certsync does not own.
func accountResult(u *graphUser) LookupResult {
	id := deref(u.ID)
	ai := u.AuthorizationInfo
	if ai == nil {
		return LookupResult{Err: fmt.Errorf("cloudsink: graph: user %s: the answer has no authorizationInfo; refusing to guess its certificateUserIds", id)}
	}
	// Graph answers a user without values with "certificateUserIds": []
	// (the user resource's documented JSON), which the SDK reads as an
	// empty, non-nil list; a missing or null property is not documented
	// and says nothing about the values.
	if ai.CertificateUserIDs == nil {
		return LookupResult{Err: fmt.Errorf("cloudsink: graph: user %s: the answer's authorizationInfo has no certificateUserIds; refusing to guess them", id)}
	}
	acc := &Account{
		ID:                id,
		UserPrincipalName: deref(u.UserPrincipalName),
		Mail:              deref(u.Mail),
		Values:            map[string][]string{TargetCertificateUserIDs: append([]string{}, *ai.CertificateUserIDs...)},
	}
	if deref(u.OnPremisesSyncEnabled) {
		acc.Refusal = RefusalSynced
	}
	return LookupResult{Account: acc}
}

// graphUser is what a lookup selects of a user (userSelect). Answers are
// read with encoding/json, not the SDK's model: that builds a map of a
// deserializer for each of the user resource's properties for every
// user it parses, which cost a first pass over 100,000 users about 5 s
// of CPU. A property of the wrong JSON type fails the whole answer;
// null and absent read as nil, and [] as an empty, non-nil list.
type graphUser struct {
	ID                    *string `json:"id"`
	UserPrincipalName     *string `json:"userPrincipalName"`
	Mail                  *string `json:"mail"`
	OnPremisesImmutableID *string `json:"onPremisesImmutableId"`
	OnPremisesSyncEnabled *bool   `json:"onPremisesSyncEnabled"`
	AuthorizationInfo     *struct {
		CertificateUserIDs *[]string `json:"certificateUserIds"`
	} `json:"authorizationInfo"`
}

// parseUser reads one user.
func parseUser(body []byte) (*graphUser, error) {
	var u graphUser
	if err := json.Unmarshal(body, &u); err != nil {
		return nil, fmt.Errorf("parse user: %w", err)
	}
	if u.ID == nil {
		return nil, errors.New("parse user: not a user")
	}
	return &u, nil
}

// parseUserList reads a user collection and its @odata.nextLink.
func parseUserList(body []byte) ([]*graphUser, string, error) {
	// A collection without "value" must not read as "nobody matched".
	var list struct {
		Value    *[]*graphUser `json:"value"`
		NextLink *string       `json:"@odata.nextLink"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, "", fmt.Errorf("parse users: not a user collection: %w", err)
	}
	if list.Value == nil {
		return nil, "", errors.New("parse users: not a user collection")
	}
	for _, u := range *list.Value {
		if u == nil {
			return nil, "", errors.New("parse users: a null user in the collection")
		}
	}
	return *list.Value, deref(list.NextLink), nil
}
