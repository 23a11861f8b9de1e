package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemo runs `certsync demo` as the README's first command does and
// checks that it shows every case it promises.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(context.Background(), &out, false); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"1. Dry run", "2. Sync", "3. Second sync",
		"expired:", "no-ski:", "untrusted:", "eku:", "malformed:", "not-yet-valid:", "ca-certificate:", "over-limit:",
		"onPremisesSyncEnabled", "no cloud user with onPremisesImmutableId",
		"(not published by certsync: kept)", "(left out: the target holds at most this many values)",
		"Graph write requests in this step: 0", "Demo finished",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Count(s, "Graph write requests in this step: 0") != 2 {
		t.Errorf("the dry run and the second sync must both make no writes:\n%s", s)
	}
}
