package sdnotify

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Notifier sends notifications to the service manager. The zero value
// (and a nil *Notifier) sends nothing.
type Notifier struct {
	socket   string        // $NOTIFY_SOCKET; "" = not under systemd
	watchdog time.Duration // $WATCHDOG_USEC when meant for this process; 0 = off
}

// FromEnv reads the service manager's variables through getenv (os.Getenv)
// for the process pid (os.Getpid()).
func FromEnv(getenv func(string) string, pid int) (*Notifier, error) {
	n := &Notifier{socket: getenv("NOTIFY_SOCKET")}
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return n, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return n, nil // the watchdog is meant for another process
	}
	us, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || us <= 0 {
		return n, fmt.Errorf("sdnotify: WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	n.watchdog = time.Duration(us) * time.Microsecond
	return n, nil
}

// Enabled says whether a service manager listens.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// Watchdog is the service's WatchdogSec, 0 when off.
func (n *Notifier) Watchdog() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.watchdog
}

// Notify sends one message of newline-separated assignments
// ("READY=1\nSTATUS=…"). A status line must not hold a newline: it is
// replaced by a space.
func (n *Notifier) Notify(assignments ...string) error {
	if !n.Enabled() {
		return nil
	}
	for i, a := range assignments {
		assignments[i] = strings.ReplaceAll(a, "\n", " ")
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	if strings.HasPrefix(addr.Name, "@") {
		addr.Name = "\x00" + addr.Name[1:] // Linux abstract namespace
	}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sdnotify: NOTIFY_SOCKET %s: %w", n.socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(assignments, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: NOTIFY_SOCKET %s: %w", n.socket, err)
	}
	return nil
}

// Ready says the service has started, with a status line.
func (n *Notifier) Ready(status string) error {
	return n.Notify("READY=1", "STATUS="+status)
}

// Status updates the status line systemctl status shows.
func (n *Notifier) Status(status string) error { return n.Notify("STATUS=" + status) }

// Stopping says the service is stopping.
func (n *Notifier) Stopping(status string) error {
	return n.Notify("STOPPING=1", "STATUS="+status)
}

// KeepAlive sends WATCHDOG=1 every half of the watchdog interval until ctx
// ends, while alive says the process is not stuck (alive may be nil). It
// returns at once when no watchdog is configured.
func (n *Notifier) KeepAlive(ctx context.Context, alive func() bool) {
	every := n.Watchdog() / 2
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if alive == nil || alive() {
			_ = n.Notify("WATCHDOG=1")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
