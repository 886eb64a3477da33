#!/usr/bin/env bash
# Create .venv with the pinned tooling (requirements.txt) and check that the collections
# bundled with the ansible package satisfy requirements.yml (Galaxy is not reachable).
set -euo pipefail

cd "$(dirname "$0")/../.."
die() { printf 'venv: %s\n' "$*" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "venv: creating .venv"
  python3 -m venv .venv || die "python3 -m venv failed: install Debian's python3-venv, then rerun."
fi
echo "venv: installing requirements.txt"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt \
  || die "pip could not install requirements.txt: read the error above (network to PyPI?), then rerun."
.venv/bin/python lab/bootstrap/check_collections.py requirements.yml
touch .venv/.installed
