#!/usr/bin/env bash
# Benchmark: point-in-time recovery with pgBackRest, same database, same run (bench/README.md,
# "Point-in-time recovery (pgBackRest)"). Starts its own lab server (depotix-bench-pitr),
# deploys the stack with site.yml (WAL archived by pgBackRest), generates BENCH_ROWS stock
# movements with SQL, takes a pgBackRest full backup and a dump (backup.yml -e pitr=full), then:
#
# 1. BENCH_REPEATS rounds (0: none, the RPO part only) of three recoveries, in an order that
#    rotates each round:
#    - ours: restore.yml -e target=latest, timed on the controller;
#    - bare: docker stop, pgbackrest restore into a new volume (one-off container), a
#      PostgreSQL container on it polled until promoted, timed on the lab server
#      (bench/pitr_timing.py bare), then the stack put back (not timed);
#    - pg_restore: restore.yml -e backup=latest (the dump path), timed on the controller.
#    Before ours and bare, not timed: a fresh full backup, then BENCH_WAL_ROWS movements
#    after it (archived), so that both restore the same backup and replay the same WAL.
# 2. The recovery-point objective: a writer inserts 20 numbered rows a second for
#    BENCH_RPO_SECONDS, then the database container is killed (SIGKILL); once recovered with
#    a plain docker start (crash recovery), once with what the repository holds alone (the
#    volume lost: a bare recovery into a scratch volume) and restore.yml -e target=latest.
#
# Writes bench/pitr_results.json; keeps the logs in .cache/bench-pitr/<time>/ (or under
# BENCH_LOG_DIR); removes the server with its volumes whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg" DEPOTIX_LAB_RELEASES="1.0"
# Every task in profile_tasks' summary at the end of a run's log (not only the 20 slowest).
export PROFILE_TASKS_TASK_OUTPUT_LIMIT=all
DEPOTIX_SECRETS_DIR="$(mktemp -d)"
export DEPOTIX_SECRETS_DIR
server=depotix-bench-pitr
inventory=bench/pitr_inventory
repeats=${BENCH_REPEATS:-3}
rows=${BENCH_ROWS:-1000000}
wal_rows=${BENCH_WAL_ROWS:-20000}
rpo_seconds=${BENCH_RPO_SECONDS:-100}
for bound in "repeats 0 20 $repeats" "rows 1000 10000000 $rows" "wal_rows 0 1000000 $wal_rows" \
  "rpo_seconds 10 500 $rpo_seconds"; do
  read -r name low high value <<<"$bound"
  if ! [[ $value =~ ^[0-9]+$ ]] || ((value < low || value > high)); then
    echo "bench/pitr.sh: $name must be a whole number from $low to $high, not '$value'" >&2
    exit 2
  fi
done
logs="${BENCH_LOG_DIR:-$PWD/.cache/bench-pitr}/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$logs"
samples="$logs/samples.jsonl"
cleanup() {
  docker rm --force --volumes "$server" >/dev/null 2>&1 || true
  rm -rf "$DEPOTIX_SECRETS_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$(date -u +%H:%M:%S) $*" >&2; }
on_server() { docker exec "$server" python3 /root/pitr_timing.py "$@"; }
# ansible-playbook against the benchmark's inventory, its output in $logs/<name>.log; prints
# its wall time in seconds, measured on the controller. Fails when the play fails.
play() {
  local name=$1 start end rc=0
  shift
  start=$EPOCHREALTIME
  ansible-playbook -i "$inventory" "$@" >"$logs/$name.log" 2>&1 || rc=$?
  end=$EPOCHREALTIME
  if ((rc != 0)); then
    say "ansible-playbook $* failed (exit $rc); the end of $logs/$name.log:"
    tail -n 30 "$logs/$name.log" >&2
    return "$rc"
  fi
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}

run_started=$(date -u +%FT%TZ)
say "logs in $logs"
say "setup: lab server $server, site.yml, $rows movements"
setup_seconds=$(play setup bench/pitr.yml -e "bench_rows=$rows")
generated=$(on_server state)
say "setup done in ${setup_seconds} s: $generated"
backup_seconds=$(play backup backup.yml -e pitr=full)
say "backup.yml -e pitr=full: ${backup_seconds} s"
dump_movements=$(jq -r .movements <<<"$generated")
jq -n --argjson rows "$rows" --argjson repeats "$repeats" --argjson wal_rows "$wal_rows" \
  --argjson rpo_seconds "$rpo_seconds" --argjson state "$generated" --argjson setup_seconds "$setup_seconds" \
  --argjson backup_seconds "$backup_seconds" --arg started "$run_started" \
  --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --arg changed "$(git status --short -- roles playbooks library restore.yml backup.yml site.yml | cut -c4- | paste -sd' ')" \
  --arg loadavg "$(cut -d' ' -f1-3 /proc/loadavg)" --arg logs "$logs" \
  --arg postgres "$(docker exec "$server" docker exec server-postgres-1 postgres --version)" \
  --arg pgbackrest "$(docker exec "$server" docker exec server-postgres-1 pgbackrest version)" \
  '{rows: $rows, repeats: $repeats, wal_rows: $wal_rows, rpo_kill_after_seconds: $rpo_seconds,
    movements_after_generation: $state.movements, setup_seconds: $setup_seconds,
    backup_play_seconds: $backup_seconds, started: $started, loadavg_at_start: $loadavg,
    code: {commit: $commit, uncommitted_in_roles_playbooks_library: ($changed | split(" ") | map(select(. != "")))},
    postgres: $postgres, pgbackrest: $pgbackrest, logs: $logs}' >"$logs/setup.json"

sides=(ours bare pg_restore)
for ((r = 1; r <= repeats; r++)); do
  for ((i = 0; i < 3; i++)); do
    side=${sides[$(((r - 1 + i) % 3))]}
    case $side in
      ours)
        prepared=$(on_server prepare --wal-rows "$wal_rows")
        seconds=$(play "r${r}_ours" restore.yml -e target=latest)
        after=$(on_server state --expect-movements "$(jq -r .movements <<<"$prepared")")
        jq -cn --arg kind ours --argjson repeat "$r" --argjson position "$((i + 1))" --argjson seconds "$seconds" \
          --argjson prepared "$prepared" --argjson after "$after" --arg log "$logs/r${r}_ours.log" \
          '{kind: $kind, repeat: $repeat, position: $position, seconds: $seconds, prepared: $prepared,
            after: $after, log: $log}' >>"$samples"
        ;;
      bare)
        prepared=$(on_server prepare --wal-rows "$wal_rows")
        bare=$(on_server bare --expect-movements "$(jq -r .movements <<<"$prepared")")
        seconds=$(jq -r .seconds <<<"$bare")
        jq -cn --arg kind bare --argjson repeat "$r" --argjson position "$((i + 1))" --argjson seconds "$seconds" \
          --argjson prepared "$prepared" --argjson bare "$bare" \
          '{kind: $kind, repeat: $repeat, position: $position, seconds: $seconds, prepared: $prepared,
            bare: $bare}' >>"$samples"
        ;;
      pg_restore)
        seconds=$(play "r${r}_pg_restore" restore.yml -e backup=latest)
        after=$(on_server state --expect-movements "$dump_movements")
        jq -cn --arg kind pg_restore --argjson repeat "$r" --argjson position "$((i + 1))" \
          --argjson seconds "$seconds" --argjson after "$after" --arg log "$logs/r${r}_pg_restore.log" \
          '{kind: $kind, repeat: $repeat, position: $position, seconds: $seconds, after: $after,
            log: $log}' >>"$samples"
        ;;
    esac
    say "round $r, $((i + 1)). $side: ${seconds} s"
  done
done

# Each run from the same start: a fresh full backup, its WAL archived (the last switch), then
# the writer for BENCH_RPO_SECONDS and the kill.
say "recovery-point objective: the writer for ${rpo_seconds} s, then a kill; twice"
prepared=$(on_server prepare --wal-rows 0)
killed=$(on_server rpo-kill --run crash --kill-after "$rpo_seconds")
say "crash: $killed"
started=$(on_server rpo-start --run crash)
say "crash, docker start: $started"
jq -cn --arg kind rpo --arg run crash --argjson prepared "$prepared" --argjson killed "$killed" \
  --argjson recovered "$started" \
  '{kind: $kind, run: $run, prepared: $prepared, killed: $killed, docker_start: $recovered}' >>"$samples"

prepared=$(on_server prepare --wal-rows 0)
killed=$(on_server rpo-kill --run pitr --kill-after "$rpo_seconds")
say "pitr: $killed"
scratch=$(on_server rpo-scratch --run pitr)
say "pitr, the repository alone (volume lost): $scratch"
rc=0
seconds=$(play rpo_restore restore.yml -e target=latest) || rc=$?
if ((rc == 0)); then
  after=$(on_server rpo-count --run pitr)
  say "pitr, restore.yml -e target=latest in ${seconds} s: $after"
else
  seconds=null
  after=$(on_server rpo-count --run pitr 2>/dev/null) || after=null
fi
jq -cn --arg kind rpo --arg run pitr --argjson killed "$killed" --argjson scratch "$scratch" --argjson rc "$rc" \
  --argjson seconds "$seconds" --argjson after "$after" --arg log "$logs/rpo_restore.log" \
  --argjson prepared "$prepared" \
  '{kind: $kind, run: $run, prepared: $prepared, killed: $killed, repository_alone: $scratch,
    restore_play: {rc: $rc, seconds: $seconds, after: $after}, log: $log}' >>"$samples"

jq --arg finished "$(date -u +%FT%TZ)" --arg loadavg "$(cut -d' ' -f1-3 /proc/loadavg)" \
  '. + {finished: $finished, loadavg_at_end: $loadavg}' "$logs/setup.json" >"$logs/setup.json.tmp"
mv "$logs/setup.json.tmp" "$logs/setup.json"
python3 bench/pitr_timing.py summarize --samples "$samples" --setup "$logs/setup.json" >bench/pitr_results.json.tmp
mv bench/pitr_results.json.tmp bench/pitr_results.json
jq .summary bench/pitr_results.json
