#!/bin/sh
# Start the lab server's services: cron and the inner Docker engine.
# With arguments (Molecule passes a keep-alive command), run them in the foreground
# while the engine runs in the background; without, wait on the engine.
set -eu
cron
dockerd --log-level=warn >>/var/log/dockerd.log 2>&1 &
dockerd_pid=$!
if [ "$#" -gt 0 ]; then
  exec "$@"
fi
wait "$dockerd_pid"
