package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestServiceCommand: `certsync service` checks its configuration before
// it registers anything, and outside Windows says to use systemd. (The
// service manager itself answers only on Windows: agent/winsvc tests the
// protocol; README says what only a Windows host confirms.)
func TestServiceCommand(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("would register a real service")
	}
	w := newWorld(t, basicPeople(), "")
	broken := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(broken, []byte("sources: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"service", "install"}, "--config is required"},
		{[]string{"service", "install", "--config", broken}, "cannot unmarshal"},
		{[]string{"service", "install", "--config", w.cfg}, "only on Windows"},
		{[]string{"service", "start"}, "only on Windows"},
		{[]string{"service", "stop"}, "only on Windows"},
		{[]string{"service", "uninstall"}, "only on Windows"},
	} {
		cmd := exec.Command(certsyncBin, tc.args...)
		out, err := cmd.CombinedOutput()
		if _, ok := err.(*exec.ExitError); !ok || !strings.Contains(string(out), tc.want) {
			t.Errorf("certsync %s: %v %q, want a failure saying %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
}
