package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotifyThroughTheBinary runs `certsync run` as systemd runs a
// Type=notify service with WatchdogSec: the test holds the notify socket
// and reads what the agent says: READY=1, each pass as STATUS, WATCHDOG=1
// while passes keep finishing, STOPPING=1 on SIGTERM.
func TestSystemdNotifyThroughTheBinary(t *testing.T) {
	w := newWorld(t, basicPeople(), "schedule: {interval: 1s}\n")
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 1000)
	go func() {
		buf := make([]byte, 8192)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()

	cmd := exec.Command(certsyncBin, "run", "--config", w.cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// await reads notifications until one contains want.
	var seen []string
	await := func(want string) string {
		t.Helper()
		timeout := time.After(time.Minute)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("the notify socket closed before %q; seen %q", want, seen)
				}
				seen = append(seen, m)
				if strings.Contains(m, want) {
					return m
				}
			case <-timeout:
				t.Fatalf("no %q from the agent within a minute; seen %q\nagent log:\n%s", want, seen, errb.String())
			}
		}
	}
	if m := await("READY=1"); !strings.Contains(m, "STATUS=running") {
		t.Errorf("READY without a status: %q", m)
	}
	if m := await("STATUS=last pass full"); !strings.Contains(m, "changes") || !strings.Contains(m, "5 users read") {
		t.Errorf("the first pass's status: %q", m)
	}
	await("WATCHDOG=1")
	await("STATUS=last pass incremental")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	await("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent exit after SIGTERM: %v\n%s", err, errb.String())
	}
}
