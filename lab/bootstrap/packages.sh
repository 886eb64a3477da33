#!/usr/bin/env bash
# Install the Debian packages the project needs on the controller, when missing:
# the Docker engine, debootstrap for the base image, PostgreSQL server binaries for
# the reference API's tests, venv support for Debian's python3, and openssl for the
# lab edge's certificate. Quiet when all are there.
set -euo pipefail

die() { printf 'packages: %s\n' "$*" >&2; exit 1; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ "${#missing[@]}" -eq 0 ] && exit 0

[ "$(id -u)" -eq 0 ] || die "missing ${missing[*]} and installing needs root: run 'sudo apt-get install ${missing[*]}' (or 'sudo make lab'), then rerun."
echo "packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || die "apt-get update failed: check the Debian mirror in /etc/apt/sources.list, then rerun."
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || die "installing ${missing[*]} failed: run 'apt-get install ${missing[*]}' to see why, then rerun."
