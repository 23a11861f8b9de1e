package cloudsink

import (
	"net/http"
	"testing"
)

// FuzzGraphAnswer: whatever Graph answers to a lookup item (by id, or a
// $filter on mail), resolving it never panics, gives every value asked
// for exactly one result (an account or an error), and an account always
// carries its certificateUserIds (never read "missing" as "none"). The
// refusal of an item (itemError) keeps its status.
func FuzzGraphAnswer(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users(id,userPrincipalName,mail,onPremisesImmutableId,onPremisesSyncEnabled,authorizationInfo)/$entity","id":"9d4b1a1e-56b8-4a4e-9c5a-2f0c4c2c1f10","userPrincipalName":"alice@contoso.com","mail":"alice@contoso.com","onPremisesImmutableId":"kHnXrrhCo0WbOe5xWQwTbA==","onPremisesSyncEnabled":null,"authorizationInfo":{"certificateUserIds":["X509:<SKI>6FC1A1E3DA0C3E3FE0A3A3B5E7F0C6D6B8E2B1A4","X509:<PN>alice@contoso.com"]}}`},
		{200, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users","value":[{"id":"1","mail":"Alice@Contoso.com","authorizationInfo":{"certificateUserIds":[]}},{"id":"2","mail":"bob@contoso.com","onPremisesSyncEnabled":true,"authorizationInfo":{"certificateUserIds":null}}]}`},
		{200, `{"value":[{"id":"1","mail":"alice@contoso.com"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/users?$skiptoken=X"}`},
		{200, `{"value":[]}`},
		{200, `{}`},
		{200, `{"id":"9d4b1a1e-56b8-4a4e-9c5a-2f0c4c2c1f10"}`},
		{404, `{"error":{"code":"Request_ResourceNotFound","message":"Resource '9d4b' does not exist or one of its queried reference-property objects are not present.","innerError":{"date":"2026-12-03T10:00:00","request-id":"r","client-request-id":"c"}}}`},
		{429, `{"error":{"code":"TooManyRequests","message":"Too many requests."}}`},
		{400, `{"error":{"code":"Request_BadRequest","message":"Unsupported or invalid query filter clause specified for property 'mail' of resource 'User'."}}`},
		{200, `[1,2,3]`},
		{200, `{"value":{"id":"1"}}`},
		{200, `{"value":[{"id":"1","mail":"alice@contoso.com","authorizationInfo":{"certificateUserIds":[1,{"x":"y"},null]}}]}`},
	}
	for _, s := range seeds {
		f.Add(s.status, []byte(s.body), false)
		f.Add(s.status, []byte(s.body), true)
	}
	f.Fuzz(func(t *testing.T, status int, body []byte, byID bool) {
		q := lookupQuery{prop: "mail", values: []string{"alice@contoso.com", "BOB@contoso.com"},
			req: batchRequest{Method: http.MethodGet, errPath: "/users"}}
		if byID {
			q = lookupQuery{prop: "id", values: []string{"9d4b1a1e-56b8-4a4e-9c5a-2f0c4c2c1f10"},
				req: batchRequest{Method: http.MethodGet, errPath: "/users/9d4b1a1e-56b8-4a4e-9c5a-2f0c4c2c1f10"}}
		}
		r := batchResponse{ID: "1", Status: status, Body: body, Headers: map[string]string{"Retry-After": "3"}}
		out := resolve(q, r)
		for _, v := range q.values {
			res, ok := out[normalize(q.prop, v)]
			switch {
			case !ok:
				t.Fatalf("no result for %q", v)
			case (res.Account == nil) == (res.Err == nil):
				t.Fatalf("result for %q: account %v, err %v: want exactly one", v, res.Account, res.Err)
			case res.Account != nil && res.Account.Values[TargetCertificateUserIDs] == nil:
				t.Fatalf("account %s without its certificateUserIds", res.Account.ID)
			case res.Account != nil && status != http.StatusOK:
				t.Fatalf("status %d read as an account", status)
			}
		}
		if e := itemError(q.req, r); e.Status != status {
			t.Fatalf("itemError: %+v", e)
		}
	})
}
