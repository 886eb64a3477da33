#!/bin/bash
# The host lock with real runs, on the controller against the scenario's lab server.
#
#   lock_runs.sh live       a site.yml run holds the lock; a second site.yml started meanwhile
#                           is refused, naming it; the first ends well and leaves no lock
#   lock_runs.sh killed     a site.yml run is killed (SIGKILL, its whole process group) while
#                           it holds the lock; the next run is refused as stale; one with
#                           -e break_lock=true breaks it and converges, leaving no lock
#   lock_runs.sh elsewhere  a lock of a run from another controller: refused naming it;
#                           backup.yml --check -e break_lock=true leaves it as it was; a
#                           deploy that fails after breaking it leaves no lock
#
# Every nested run's output is kept as <ephemeral>/lock_<name>.log, and what the case
# observed (pids, exit codes, lock file contents) as <ephemeral>/lock_<case>.json, for the
# tests (tests/test_host_lock.py). Runs are the script's children, so it reaps them and
# knows their exit codes.
set -u
case_name=$1
server=depotix-${MOLECULE_SCENARIO_NAME}
out=${MOLECULE_EPHEMERAL_DIRECTORY}
lock=/var/lib/depotix/run.lock

run() {  # run NAME ARGS...: a nested ansible-playbook, its output kept; prints its exit code
  local name=$1
  shift
  ansible-playbook -i "$MOLECULE_INVENTORY_FILE" "$@" >"$out/lock_$name.log" 2>&1 </dev/null
  echo $?
}

lock_file() {  # the lock file on the server, or nothing
  docker exec "$server" cat "$lock" 2>/dev/null
}

start_holder() {  # start_holder NAME: site.yml in its own process group; waits until it holds the lock
  setsid ansible-playbook -i "$MOLECULE_INVENTORY_FILE" site.yml >"$out/lock_$1.log" 2>&1 </dev/null &
  holder=$!
  for _ in $(seq 1 900); do
    lock_file | grep -q "\"pid\": $holder," && return 0
    kill -0 "$holder" 2>/dev/null || break
    sleep 0.2
  done
  echo "site.yml (pid $holder) never held the lock" >&2
  exit 1
}

case $case_name in
  live)
    start_holder holder
    held=$(lock_file)
    refused_rc=$(run live_refused site.yml)
    kill -0 "$holder" 2>/dev/null && holder_after="running" || holder_after="ended"
    wait "$holder"
    holder_rc=$?
    left=$(lock_file)
    ;;
  killed)
    start_holder killed
    held=$(lock_file)
    kill -9 -- "-$holder"
    wait "$holder"
    holder_rc=$?
    # The convention of killed runs' logs (molecule/_shared/test_no_secret_leaked.py): say so.
    echo "kill_during: killed the run on purpose (lock_runs.sh: SIGKILL to its process group while it held" \
      "the host lock)" >>"$out/lock_killed.log"
    # Let the task the server was running when the controller died end on its own.
    sleep 5
    left_by_kill=$(lock_file)
    stale_rc=$(run stale site.yml)
    break_rc=$(run break site.yml -e break_lock=true)
    left=$(lock_file)
    ;;
  elsewhere)
    planted=$(python3 -c 'import json, sys
print(json.dumps({"run_id": "deploy@ops-elsewhere/4711/bootid:99", "who": "deploy@ops-elsewhere",
                  "controller": "ops-elsewhere", "pid": 4711, "pid_start": "bootid:99", "playbook": "deploy.yml",
                  "arguments": {"api_release": "2.0"}, "since": "2026-01-01T02:00:00+00:00"}, indent=2))')
    docker exec "$server" mkdir -p "$(dirname "$lock")"
    printf '%s\n' "$planted" | docker exec -i "$server" sh -c "cat > $lock"
    held=$(lock_file)
    refused_rc=$(run elsewhere_refused site.yml)
    check_rc=$(run elsewhere_check backup.yml --check -e break_lock=true)
    after_check=$(lock_file)
    failed_rc=$(run elsewhere_failed_deploy deploy.yml -e api_release=9.9 -e break_lock=true)
    left=$(lock_file)
    ;;
  *)
    echo "usage: $0 live|killed|elsewhere" >&2
    exit 2
    ;;
esac

# What the case observed, as JSON (unset figures are left out).
python3 - "$out/lock_$case_name.json" <<EOF
import json, sys
figures = {
    "holder_pid": "${holder:-}", "holder_rc": "${holder_rc:-}", "holder_after": "${holder_after:-}",
    "refused_rc": "${refused_rc:-}", "stale_rc": "${stale_rc:-}", "break_rc": "${break_rc:-}",
    "check_rc": "${check_rc:-}", "failed_rc": "${failed_rc:-}",
}
files = {"held": """${held:-}""", "left_by_kill": """${left_by_kill:-}""", "after_check": """${after_check:-}""",
         "left": """${left:-}"""}
observed = {name: value for name, value in figures.items() if value != ""}
observed.update({name: json.loads(text) if text.strip() else None for name, text in files.items()})
with open(sys.argv[1], "w") as handle:
    json.dump(observed, handle, indent=2)
EOF
