#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
# Purging removes the state file (what certsync published is remembered
# there); the certsync user stays, as Debian does for system users.
if [ "$1" = "purge" ]; then
  rm -rf /var/lib/certsync
fi
exit 0
