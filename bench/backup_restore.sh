#!/usr/bin/env bash
# Benchmark: our backup and restore against bare pg_dump / pg_restore, same database, same
# run (bench/README.md, "Backup and restore"). Starts its own lab server
# (depotix-bench-backup), deploys the stack with site.yml, generates BENCH_ROWS stock
# movements with SQL, times both sides BENCH_REPEATS times, writes bench/backup_results.json,
# and removes the server with its volumes whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg" DEPOTIX_LAB_RELEASES="1.0"
DEPOTIX_SECRETS_DIR="$(mktemp -d)"
export DEPOTIX_SECRETS_DIR
server=depotix-bench-backup
cleanup() {
  docker rm --force --volumes "$server" >/dev/null 2>&1 || true
  rm -rf "$DEPOTIX_SECRETS_DIR"
}
trap cleanup EXIT
ansible-playbook -i bench/backup_inventory bench/backup_restore.yml \
  -e "bench_rows=${BENCH_ROWS:-1000000}" -e "bench_repeats=${BENCH_REPEATS:-3}"
