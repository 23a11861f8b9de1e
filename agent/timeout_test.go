package agent

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
)

// stuckSource is a directory that never answers until the pass ends.
type stuckSource struct{ listSource }

func (s *stuckSource) Read(ctx context.Context, _ ldapsrc.ReadRequest, _ func(mapping.SourceUser) error) (ldapsrc.ReadResult, error) {
	<-ctx.Done()
	return ldapsrc.ReadResult{}, ctx.Err()
}

// A pass that runs past schedule.passTimeout is stopped and fails with
// that cause, and nothing is written to the cloud.
func TestPassTimeoutFailsThePass(t *testing.T) {
	f := newFixture(t, graphtest.User{Mail: "a@x.test"})
	graph, err := NewGraphTarget(GraphSettings{}, Match{SourceAttribute: "mail", CloudProperty: "mail"}, f.sink)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(RunnerConfig{
		Sources:   []SourceOpener{{Name: "test", Open: func(context.Context) (Source, error) { return &stuckSource{}, nil }}},
		StatePath: filepath.Join(t.TempDir(), "state.db"), Targets: []Target{graph}, PassTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The test's own bound: without the pass timeout the pass would wait
	// for this one and fail without naming schedule.passTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = r.Pass(ctx, PassOptions{})
	if err == nil || !strings.Contains(err.Error(), "longer than schedule.passTimeout (50ms)") {
		t.Fatalf("pass: %v, want the pass timeout named", err)
	}
	if f.graph.Writes() != 0 {
		t.Fatalf("%d cloud writes", f.graph.Writes())
	}
}
