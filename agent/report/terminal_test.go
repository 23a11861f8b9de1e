package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/mapping"
)

// Subjects, DNs and names come from anyone who may write a certificate or
// an entry: in a table they are shown, never acted on by the terminal (an
// escape sequence could erase the line above it, a removal).
func TestTableShowsControlCharactersEscaped(t *testing.T) {
	evil := "mallory\x1b[1A\x1b[2K\r\u202eevil\x9b"
	p := (&agent.Plan{Mode: agent.ModeFull, Started: time.Unix(0, 0).UTC()}).SetUsers(&agent.UserPlan{
		Anchor: "a", Name: evil, DN: "uid=" + evil,
		Rejected: []mapping.Rejection{{Code: mapping.RejectExpired, Subject: "CN=" + evil, Reason: "expired"}},
		Targets: []*agent.TargetPlan{{Target: "graph.certificateUserIds", CloudID: "id",
			Change: mapping.TargetChange{Remove: []string{"X509:<SKI>01"}}}},
	})
	var buf bytes.Buffer
	if err := WriteTable(&buf, p, true); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, raw := range []string{"\x1b", "\r", "\u202e", "\u009b"} {
		if strings.Contains(out, raw) {
			t.Errorf("the table holds a raw %q:\n%s", raw, out)
		}
	}
	for _, shown := range []string{`mallory\x1b[1A\x1b[2K\x0d\u202eevil\x9b`, "X509:<SKI>01"} {
		if !strings.Contains(out, shown) {
			t.Errorf("the table does not show %q:\n%s", shown, out)
		}
	}

	var st bytes.Buffer
	if err := WriteStatus(&st, "table", Status{Problems: []StatusProblem{{Name: evil, DN: evil, Problem: "p"}}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(st.String(), "\x1b") || !strings.Contains(st.String(), `mallory\x1b[1A`) {
		t.Errorf("status shows %q", st.String())
	}
}
