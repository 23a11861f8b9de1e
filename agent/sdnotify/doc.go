// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)): one datagram per message to the unix socket named by
// $NOTIFY_SOCKET, "READY=1", "STATUS=…", "WATCHDOG=1", "STOPPING=1".
// Without $NOTIFY_SOCKET (not started by systemd with Type=notify) every
// call does nothing.
//
// sdnotify imports nothing of certsync's; only the command imports it.
package sdnotify
