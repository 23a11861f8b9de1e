package cloudsink

import (
	"context"
	"strings"
	"testing"

	"github.com/certsync/certsync/cloudsink/graphtest"
)

// A Graph answer larger than certsync reads fails its request with a
// clear error instead of being read whole into memory.
func TestGraphAnswerOverTheLimitFails(t *testing.T) {
	srv := startEmulator(t, graphtest.Options{ClientSecret: testSecret, Users: tenantUsers(20)})
	var lookups []Lookup
	for _, u := range srv.Users() {
		lookups = append(lookups, Lookup{Key: u.ID, Property: "id", Value: u.ID})
	}
	for _, tc := range []struct {
		name  string
		limit int64
		want  string
	}{
		{"default", 0, ""},
		{"small", 2048, "answer larger than the 2048 bytes certsync reads of one Graph answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := secretGraph(t, srv, GraphConfig{MaxResponseBytes: tc.limit, MaxAttempts: 1})
			found, err := g.Lookup(context.Background(), lookups)
			if tc.want == "" {
				if err != nil || len(found) != len(lookups) {
					t.Fatalf("lookup: %d found, %v", len(found), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("lookup: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
