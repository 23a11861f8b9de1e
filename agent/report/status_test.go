package report

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/state"
)

// TestStatusJSONNames: `status --output json` uses camelCase names, and
// the sync report's names where the meaning is the same.
func TestStatusJSONNames(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	s := agent.Status{Users: 3, Unconfigured: 1,
		LastPass: &state.PassSummary{Started: now, Finished: now.Add(time.Second), Mode: "full", Result: "partial", Error: "x",
			UsersRead: 3, Sources: []state.SourcePass{{Name: "ad", Mode: "full", UsersRead: 3, Error: "y"}}},
		Sources:  []agent.SourceStatus{{Name: "ad", Users: 3, Tracking: &agent.TrackingStatus{Source: "ad", FullAt: now, NextReview: now, HasWatermark: true}}},
		Problems: []state.Record{{Anchor: "a", Name: "bob", Problem: "p", ProblemAt: now}},
	}
	var buf bytes.Buffer
	if err := WriteStatus(&buf, "json", NewStatus("/var/lib/certsync/state.db", s)); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	camel := regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, sub := range v {
				if !camel.MatchString(k) {
					t.Errorf("%s.%s is not camelCase", path, k)
				}
				walk(path+"."+k, sub)
			}
		case []any:
			for _, sub := range v {
				walk(path+"[]", sub)
			}
		}
	}
	walk("status", doc)

	// The names the sync report uses for the same things.
	sync, err := json.Marshal(Summary{})
	if err != nil {
		t.Fatal(err)
	}
	var syncSummary map[string]any
	_ = json.Unmarshal(sync, &syncSummary)
	last := doc["lastPass"].(map[string]any)
	for k := range last["summary"].(map[string]any) {
		if _, ok := syncSummary[k]; !ok {
			t.Errorf("status lastPass.summary.%s: the sync report's summary has no such name", k)
		}
	}
	for _, k := range []string{"usersInState", "lastPass", "sources", "problems"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("status has no %s", k)
		}
	}
}
