//go:build !release

package demo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/cloudsink/exotest"
)

// The demo with the real pipeline runs in cmd/certsync (TestDemo). These
// tests drive Run with fake passes, to show that its checks fail a demo
// whose pipeline does not do its job.

// fake is a pipeline that writes nothing and records what Run asked of it.
type fake struct {
	configPath string
	printed    []bool // dryRun of each plan printed
	err        error  // returned by every pass
	noPlan     bool   // passes return no plan
}

func (f *fake) options(out io.Writer, keep bool) Options {
	return Options{
		Out:  out,
		Keep: keep,
		Build: func(_ context.Context, configPath string) (Pass, error) {
			f.configPath = configPath
			return func(context.Context, bool) (*agent.Plan, error) {
				if f.noPlan {
					return nil, f.err
				}
				return &agent.Plan{}, f.err
			}, nil
		},
		Print: func(w io.Writer, _ *agent.Plan, dryRun bool) error {
			f.printed = append(f.printed, dryRun)
			_, err := io.WriteString(w, "(plan)\n")
			return err
		},
	}
}

func TestDemoFailsWhenTheSyncWritesNothing(t *testing.T) {
	var f fake
	var out bytes.Buffer
	err := Run(t.Context(), f.options(&out, false))
	if err == nil || !strings.Contains(err.Error(), "step 2: the mailboxes do not hold what they should") {
		t.Fatalf("Run = %v, want the sync's mailbox check to fail\n%s", err, out.String())
	}
	if want := []bool{true, false}; !slices.Equal(f.printed, want) {
		t.Errorf("plans printed with dryRun %v, want %v", f.printed, want)
	}
	s := out.String()
	for _, want := range []string{"certsync demo: 22 directory users at ldaps://", "=== 1. Dry run", "=== 2. Sync",
		"Graph write requests in this step: 0", "Exchange Online mailboxes after the sync"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if _, err := os.Stat(filepath.Dir(f.configPath)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the demo's directory %s is still there without Keep: %v", filepath.Dir(f.configPath), err)
	}
}

func TestDemoFailsOnAPassError(t *testing.T) {
	boom := errors.New("boom")
	for _, noPlan := range []bool{false, true} {
		f := fake{err: boom, noPlan: noPlan}
		err := Run(t.Context(), f.options(nil, false))
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "step 1") {
			t.Errorf("noPlan %v: Run = %v, want step 1 failing with %v", noPlan, err, boom)
		}
		// A plan that came with the error is still shown; no plan, nothing shown.
		want := 1
		if noPlan {
			want = 0
		}
		if len(f.printed) != want {
			t.Errorf("noPlan %v: %d plans printed, want %d", noPlan, len(f.printed), want)
		}
	}
}

func TestDemoKeep(t *testing.T) {
	var f fake
	var out bytes.Buffer
	_ = Run(t.Context(), f.options(&out, true)) // fails at step 2, as above
	dir := filepath.Dir(f.configPath)
	t.Cleanup(func() { os.RemoveAll(dir) })
	if !strings.HasPrefix(out.String(), "Demo files are kept in "+dir+"\n") {
		t.Errorf("output does not start with the kept directory %s:\n%s", dir, out.String())
	}
	for _, name := range []string{"agent.yaml", "issuing-cas.pem", "ldap-ca.pem", "ldap-password", "graph-ca.pem", "app-client-secret"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("kept directory: %v", err)
		}
	}
}

func TestDemoNeedsBuildAndPrint(t *testing.T) {
	if err := Run(t.Context(), Options{}); err == nil {
		t.Error("Run without Build and Print succeeded")
	}
}

func TestDemoWorld(t *testing.T) {
	w, err := buildWorld()
	if err != nil {
		t.Fatal(err)
	}
	if w.people != 22 || len(w.entries) != w.people+1 {
		t.Errorf("%d people, %d directory entries: want 22 and the service account", w.people, len(w.entries))
	}
	if len(w.boxesBefore) != len(w.mailboxes) || len(w.boxesAfter) != len(w.mailboxes) {
		t.Errorf("%d mailboxes, but %d expected before and %d after the sync", len(w.mailboxes), len(w.boxesBefore), len(w.boxesAfter))
	}
	if n := len(w.boxesAfter["grace@contoso.com"].userCert); n != exotest.MaxValues {
		t.Errorf("grace's mailbox must end with %d certificates, want Exchange's limit %d", n, exotest.MaxValues)
	}
	if _, ok := w.boxesAfter["trent@contoso.com"]; ok {
		t.Error("trent has no mailbox, yet one is expected")
	}
}
