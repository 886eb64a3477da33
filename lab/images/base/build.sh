#!/usr/bin/env bash
# Build the lab's base image, depotix-lab/base, from Debian with debootstrap.
#
# No registry is reachable, so the root of every lab image is a Debian rootfs made
# here and imported FROM scratch. The image carries a label with the hash of its
# inputs (this script, suite, mirror); when the label matches, nothing is rebuilt.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=${DEPOTIX_BASE_IMAGE:-depotix-lab/base}
suite=${DEPOTIX_DEBIAN_SUITE:-bookworm}
mirror=${DEPOTIX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEPOTIX_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
min_free_mb=${DEPOTIX_MIN_FREE_MB:-4096}

die() { printf 'base image: %s\n' "$*" >&2; exit 1; }

inputs_hash=$( { cat "$here/build.sh"; echo "$suite $mirror $security_mirror"; } | sha256sum | cut -c1-16)
current=$(docker image inspect "$image:latest" --format '{{ index .Config.Labels "depotix.inputs" }}' 2>/dev/null || true)
[ "$current" = "$inputs_hash" ] && exit 0

docker_root=$(docker info --format '{{ .DockerRootDir }}' 2>/dev/null) || die "no Docker engine answers: run 'make engine' first."
free_mb=$(df -Pm "$docker_root" | awk 'NR==2 { print $4 }')
[ "$free_mb" -ge "$min_free_mb" ] \
  || die "only ${free_mb} MB free under $docker_root, the lab images need ${min_free_mb} MB: free some space (e.g. 'docker system prune'), then rerun."

command -v debootstrap >/dev/null 2>&1 || {
  [ "$(id -u)" -eq 0 ] || die "debootstrap is missing and installing it needs root: run 'sudo apt-get install debootstrap', then rerun."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
    || die "installing debootstrap failed: run 'apt-get install debootstrap' to see why, then rerun."
}

work=$(mktemp -d /var/tmp/depotix-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
echo "base image: debootstrapping Debian $suite (log: $work/debootstrap.log)"
if ! debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 5 "$work/debootstrap.log" >&2
  cp "$work/debootstrap.log" /var/tmp/depotix-debootstrap.log
  die "debootstrap failed (full log: /var/tmp/depotix-debootstrap.log): check that $mirror is reachable, then rerun."
fi

cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
SOURCES
# Keep images small: no docs, no man pages, no recommends, no apt caches.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-depotix-nodoc" <<'DPKG'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
cat >"$rootfs/etc/apt/apt.conf.d/01-depotix" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
APT
# As Debian's official container images do: no .deb files left in any layer.
cat >"$rootfs/etc/apt/apt.conf.d/02-depotix-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*

tar -C "$rootfs" -c . | docker import \
  --change "LABEL depotix.inputs=$inputs_hash" \
  --change 'ENV LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive' \
  --change 'CMD ["/bin/bash"]' \
  - "$image:latest" >/dev/null
echo "base image: built $image:latest ($inputs_hash)"
