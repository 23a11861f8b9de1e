package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/mapping"
)

func TestWriteJSON(t *testing.T) {
	user := func(name string) *agent.UserPlan {
		return &agent.UserPlan{Anchor: "a-" + name, Name: name, Rejected: []mapping.Rejection{{Code: mapping.RejectExpired, Reason: "expired"}},
			Targets: []*agent.TargetPlan{{Target: "graph.certificateUserIds", CloudID: "id-" + name, Change: mapping.TargetChange{Add: []string{"X509:<SKI>01"}}}}}
	}
	cases := []struct {
		name    string
		users   []*agent.UserPlan
		passErr error
	}{
		{"no users", nil, nil},
		{"one user", []*agent.UserPlan{user("alice")}, nil},
		{"three users and an error", []*agent.UserPlan{user("a"), user("b"), user("c")}, errors.New("boom")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := (&agent.Plan{Mode: agent.ModeFull, Started: time.Unix(0, 0).UTC()}).SetUsers(tc.users...)
			var buf bytes.Buffer
			if err := WriteJSON(&buf, p, true, tc.passErr); err != nil {
				t.Fatal(err)
			}
			var r JSON
			dec := json.NewDecoder(&buf)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("not the documented JSON: %v\n%s", err, buf.String())
			}
			if r.SchemaVersion != 1 || !r.DryRun || r.Users == nil || len(r.Users) != len(tc.users) {
				t.Fatalf("decoded %+v", r)
			}
			if (tc.passErr != nil) != (r.Error != "") {
				t.Fatalf("error field: %q", r.Error)
			}
			for i, u := range r.Users {
				if u.Name != tc.users[i].Name || u.CloudID != "id-"+u.Name || u.Targets[0].Status != StatusPlanned ||
					u.Targets[0].Remove == nil || len(u.Rejected) != 1 || u.Accepted == nil {
					t.Fatalf("user %d: %+v", i, u)
				}
			}
			if strings.Contains(buf.String(), "null") {
				t.Fatalf("arrays must never be null:\n%s", buf.String())
			}
		})
	}
}
