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
