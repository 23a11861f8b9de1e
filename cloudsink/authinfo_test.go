package cloudsink

import (
	"strings"
	"testing"

	"github.com/certsync/certsync/cloudsink/graphtest"
)

// Graph answers a user without values as "authorizationInfo":
// {"certificateUserIds": []} (the user resource's documented JSON); an
// authorizationInfo without the property, or with null, says nothing
// about the values and is refused rather than read as "none": the merge
// before a write would otherwise drop values certsync does not own.
func TestAuthorizationInfoWithoutCertificateUserIDsIsUnknown(t *testing.T) {
	// The SDK registers its JSON parser when a client is built.
	secretGraph(t, startEmulator(t, graphtest.Options{ClientSecret: testSecret}), GraphConfig{})
	for _, tc := range []struct {
		name, body string
		values     []string
		err        string
	}{
		{"values", `{"id":"u1","authorizationInfo":{"certificateUserIds":["X509:<PN>a@x"]}}`, []string{"X509:<PN>a@x"}, ""},
		{"empty list", `{"id":"u1","authorizationInfo":{"certificateUserIds":[]}}`, []string{}, ""},
		{"property absent", `{"id":"u1","authorizationInfo":{}}`, nil, "no certificateUserIds"},
		{"property null", `{"id":"u1","authorizationInfo":{"certificateUserIds":null}}`, nil, "no certificateUserIds"},
		{"no authorizationInfo", `{"id":"u1"}`, nil, "no authorizationInfo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := parseUser([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			r := accountResult(u)
			if tc.err != "" {
				if r.Err == nil || !strings.Contains(r.Err.Error(), tc.err) {
					t.Fatalf("result %+v, want an error saying %q", r, tc.err)
				}
				return
			}
			if r.Err != nil || strings.Join(r.Account.Values[TargetCertificateUserIDs], ",") != strings.Join(tc.values, ",") {
				t.Fatalf("result %+v %v", r.Account, r.Err)
			}
		})
	}
}

// A user collection is read whole or refused: a property of the wrong
// JSON type, a null user or a missing "value" fail the answer rather
// than read as fewer users or values.
func TestUserListIsReadWholeOrRefused(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		users      int
		next       string
		err        bool
	}{
		{"two users and a next page", `{"value":[{"id":"1","mail":"a@x"},{"id":"2","mail":null}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/users?$skiptoken=X"}`, 2, "https://graph.microsoft.com/v1.0/users?$skiptoken=X", false},
		{"empty", `{"value":[]}`, 0, "", false},
		{"no value", `{}`, 0, "", true},
		{"value null", `{"value":null}`, 0, "", true},
		{"a null user", `{"value":[{"id":"1"},null]}`, 0, "", true},
		{"a number among the values", `{"value":[{"id":"1","authorizationInfo":{"certificateUserIds":[1]}}]}`, 0, "", true},
		{"mail a number", `{"value":[{"id":"1","mail":5}]}`, 0, "", true},
		{"sync flag a string", `{"value":[{"id":"1","onPremisesSyncEnabled":"true"}]}`, 0, "", true},
		{"not an object", `[1,2]`, 0, "", true},
		{"truncated", `{"value":[{"id":"1"}`, 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users, next, err := parseUserList([]byte(tc.body))
			if (err != nil) != tc.err || len(users) != tc.users || next != tc.next {
				t.Fatalf("%d users, next %q, error %v; want %d users, next %q, error %v", len(users), next, err, tc.users, tc.next, tc.err)
			}
		})
	}
}
