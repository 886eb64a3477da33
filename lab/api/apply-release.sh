#!/bin/sh
# Assemble the source tree of one API release: apply-release.sh RELEASE DEST
#
# app/ is release 1.0. Each later release is a directory releases/<id>/ holding only
# the files it adds or replaces, and a file PARENT naming the release it builds on.
# The tree of a release is app/ with every overlay from 1.0 down to it copied on top,
# oldest first. Overlays never delete files. Used by the Dockerfile and the tests.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
base_release=1.0

die() { printf 'apply-release: %s\n' "$*" >&2; exit 1; }

known_releases() {
  printf '%s' "$base_release"
  for dir in "$here"/releases/*/; do
    [ -f "$dir/PARENT" ] && printf ' %s' "$(basename "$dir")"
  done
  printf '\n'
}

# Print the chain of overlays from the oldest to RELEASE, one per line (none for 1.0).
overlay_chain() {
  release=$1 chain= depth=0
  while [ "$release" != "$base_release" ]; do
    [ -f "$here/releases/$release/PARENT" ] \
      || die "unknown release '$1' (known: $(known_releases))"
    chain="$release
$chain"
    release=$(tr -d '[:space:]' <"$here/releases/$release/PARENT")
    depth=$((depth + 1))
    [ "$depth" -le 20 ] || die "release '$1': PARENT files form a loop"
  done
  printf '%s' "$chain"
}

[ $# -eq 2 ] || die "usage: apply-release.sh RELEASE DEST (releases: $(known_releases))"
release=$1 dest=$2
chain=$(overlay_chain "$release")
if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
  die "destination $dest is not empty"
fi

mkdir -p "$dest"
# tar rather than cp -R so that PARENT files and bytecode caches stay behind.
tar -C "$here/app" --exclude=__pycache__ -cf - . | tar -C "$dest" -xf -
for overlay in $chain; do
  tar -C "$here/releases/$overlay" --exclude=__pycache__ --exclude=./PARENT -cf - . | tar -C "$dest" -xf -
done
printf 'apply-release: %s assembled in %s (overlays: %s)\n' "$release" "$dest" "$(echo $chain)"
