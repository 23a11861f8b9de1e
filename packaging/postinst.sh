#!/bin/sh
# certsync: the system user, its state directory, the configuration's group.
set -e

if [ "$1" = "configure" ]; then
  if ! getent group certsync >/dev/null; then
    groupadd --system certsync
  fi
  if ! getent passwd certsync >/dev/null; then
    useradd --system --gid certsync --home-dir /var/lib/certsync --no-create-home \
      --shell /usr/sbin/nologin --comment "certsync agent" certsync
  fi
  # The state file: what certsync published, for certsync alone.
  install -d -o certsync -g certsync -m 0700 /var/lib/certsync
  # The configuration (and the secret files an admin puts beside it):
  # readable by the agent's group, writable by root. On a first install
  # only, so an admin's later choice stays.
  if [ -z "$2" ]; then
    chown root:certsync /etc/certsync /etc/certsync/agent.yaml
    chmod 0750 /etc/certsync
    chmod 0640 /etc/certsync/agent.yaml
  fi
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  # An upgrade restarts a running agent; a first install leaves it off
  # until the configuration is filled in (systemctl enable --now certsync).
  if [ -n "$2" ] && systemctl is-active --quiet certsync.service; then
    systemctl restart certsync.service || true
  fi
fi
exit 0
