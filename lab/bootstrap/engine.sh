#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine.
#
# Quiet and quick when `docker info` already works. Otherwise, as root: install
# Debian's docker.io when dockerd is missing, start dockerd in the background with
# its log in a file, and wait until it answers. Every failure ends with one line
# that says what went wrong and what to do.
set -euo pipefail

log_file=${DEPOTIX_DOCKERD_LOG:-/var/log/depotix-dockerd.log}
wait_seconds=${DEPOTIX_DOCKERD_WAIT:-60}

die() { printf 'engine: %s\n' "$*" >&2; exit 1; }

engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

engine_answers && exit 0

if [ "$(id -u)" -ne 0 ]; then
  die "no Docker engine answers and starting one needs root: run 'sudo make lab', or start dockerd yourself and add your user to the 'docker' group."
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v containerd >/dev/null 2>&1; then
  echo "engine: installing Debian's docker.io (dockerd is missing)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed: check the Debian mirror in /etc/apt/sources.list, then rerun."
  apt-get install -y -qq docker.io >/dev/null \
    || die "installing docker.io failed: run 'apt-get install docker.io' to see why, then rerun."
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "engine: starting dockerd (log: $log_file)"
  mkdir -p "$(dirname "$log_file")"
  # setsid: the engine must outlive the make run that started it.
  setsid dockerd >>"$log_file" 2>&1 </dev/null &
fi

for _ in $(seq "$wait_seconds"); do
  engine_answers && { echo "engine: ready"; exit 0; }
  sleep 1
done
die "dockerd did not answer within ${wait_seconds}s: read the end of $log_file, fix what it says, then rerun."
