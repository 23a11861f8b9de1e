//go:build linux

package ldaptest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` bind-mounts named namespaces.
const netnsDir = "/var/run/netns"

// addNetns creates a named network namespace with its loopback up.
func addNetns(name string) error {
	ip := findTool("ip")
	if ip == "" {
		return fmt.Errorf("ip not found: apt-get install iproute2")
	}
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	if out, err := exec.Command(ip, "netns", "exec", name, ip, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		_ = delNetns(name)
		return fmt.Errorf("ip netns exec %s ip link set lo up: %v: %s", name, err, out)
	}
	return nil
}

func delNetns(name string) error {
	if out, err := exec.Command(findTool("ip"), "netns", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns delete %s: %v: %s", name, err, out)
	}
	return nil
}

// netnsCommand runs name inside the namespace (ip netns exec replaces
// itself with the program, so the process is the program's).
func netnsCommand(ns string, name string, args ...string) *exec.Cmd {
	return exec.Command(findTool("ip"), append([]string{"netns", "exec", ns, name}, args...)...)
}

// dialInNetns connects to addr from inside the namespace ns. The socket is
// created while this goroutine's OS thread is in ns and stays there after
// the thread switches back, so the forwarder needs no helper process per
// connection (socat would spawn two).
func dialInNetns(ctx context.Context, ns, addr string) (net.Conn, error) {
	target, err := os.Open(filepath.Join(netnsDir, ns))
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer target.Close()

	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	// A fresh goroutine so the caller's thread is never touched; if the
	// switch back fails, the thread stays locked and dies with the goroutine
	// instead of running other code inside the namespace.
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("open own netns: %w", err)}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		// The dial creates its socket on this thread; the connect itself
		// may finish on another, the socket keeps its namespace.
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			if conn != nil {
				_ = conn.Close()
			}
			done <- result{err: fmt.Errorf("setns back from %s: %w", ns, err)}
			return // thread stays locked: the runtime discards it
		}
		runtime.UnlockOSThread()
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}
