package sdnotify

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		enabled  bool
		watchdog time.Duration
		wantErr  string
	}{
		{"not under systemd", nil, false, 0, ""},
		{"notify only", map[string]string{"NOTIFY_SOCKET": "/run/x"}, true, 0, ""},
		{"watchdog", map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, true, 30 * time.Second, ""},
		{"watchdog for another process", map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, true, 0, ""},
		{"watchdog without a socket", map[string]string{"WATCHDOG_USEC": "30000000"}, false, 0, ""},
		{"bad watchdog", map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"}, true, 0, `WATCHDOG_USEC="soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := FromEnv(func(k string) string { return tt.env[k] }, 42)
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if n.Enabled() != tt.enabled || n.Watchdog() != tt.watchdog {
				t.Errorf("enabled %v watchdog %v, want %v %v", n.Enabled(), n.Watchdog(), tt.enabled, tt.watchdog)
			}
		})
	}
}

// listen is a notify socket like systemd's.
func listen(t *testing.T, name string) (*net.UnixConn, string) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, name
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	for _, tt := range []struct{ name, socket, env string }{
		{"path", filepath.Join(t.TempDir(), "notify"), ""},
		{"abstract", "\x00certsync-test-" + t.Name(), "@certsync-test-" + t.Name()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, _ := listen(t, tt.socket)
			env := tt.env
			if env == "" {
				env = tt.socket
			}
			n, _ := FromEnv(func(k string) string {
				return map[string]string{"NOTIFY_SOCKET": env, "WATCHDOG_USEC": "100000"}[k]
			}, 1)
			if err := n.Ready("running\nsecond line"); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, conn); got != "READY=1\nSTATUS=running second line" {
				t.Errorf("got %q", got)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { n.KeepAlive(ctx, func() bool { return true }); close(done) }()
			for range 2 {
				if got := receive(t, conn); got != "WATCHDOG=1" {
					t.Errorf("got %q, want WATCHDOG=1", got)
				}
			}
			cancel()
			<-done
			if err := n.Stopping("bye"); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, conn); got != "STOPPING=1\nSTATUS=bye" {
				t.Errorf("got %q", got)
			}
		})
	}
}

func TestKeepAliveStopsWhenStuck(t *testing.T) {
	conn, name := listen(t, filepath.Join(t.TempDir(), "notify"))
	n, _ := FromEnv(func(k string) string {
		return map[string]string{"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "40000"}[k]
	}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	n.KeepAlive(ctx, func() bool { return false })
	_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := conn.Read(make([]byte, 64)); err == nil {
		t.Fatal("a stuck agent still pinged the watchdog")
	}
}

func TestNotifyFailureNamesTheSocket(t *testing.T) {
	n, _ := FromEnv(func(k string) string { return map[string]string{"NOTIFY_SOCKET": "/nonexistent/notify"}[k] }, 1)
	if err := n.Status("x"); err == nil || !strings.Contains(err.Error(), "/nonexistent/notify") {
		t.Fatalf("error %v, want one naming the socket", err)
	}
	var none *Notifier
	if err := none.Ready("x"); err != nil || none.Enabled() {
		t.Fatal("a nil Notifier must do nothing")
	}
}
