#!/usr/bin/env bash
# A switch whose old slot keeps a session past api_drain_timeout: the switch to a changed
# setting (drain_switch.yml, the api role's entry points as site.yml runs them) with
# -e api_drain_timeout=3 runs in the background; once it gates the new
# release in the idle slot, a request is held open through the edge on the serving slot
# for 20 s (held_request.py, inside the lab server), and what the edge counts then is
# recorded (/root/edge_during_hold.json: the proof that the session was there). The run
# must fail on the drain. Its output goes to LOG, its exit code to the last line.
#   drain_run.sh SERVER LOG
set -uo pipefail
server=$1 log=$2
ansible-playbook -i "$MOLECULE_INVENTORY_FILE" "$(dirname "$0")/drain_switch.yml" -e api_drain_timeout=3 \
  >"$log" 2>&1 &
run=$!
for _ in $(seq 1 900); do
  grep -q 'TASK \[api : Gate on its health in the idle slot' "$log" && break
  kill -0 "$run" 2>/dev/null || break
  sleep 0.2
done
docker exec -d "$server" /root/held_request.py --token-file /home/deploy/Depotix/lab/api_token --hold 20 \
  --out /root/held_request.json
for _ in $(seq 1 50); do
  state=$(docker exec "$server" /usr/local/sbin/depotix-edge-state --servers /run/depotix-edge/admin.sock api)
  if printf '%s' "$state" | python3 -c 'import json, sys
sys.exit(0 if any(s["sessions"] for s in json.load(sys.stdin)["servers"].values()) else 1)'; then
    printf '%s\n' "$state" | docker exec -i "$server" tee /root/edge_during_hold.json >/dev/null
    break
  fi
  sleep 0.1
done
wait "$run"
rc=$?
echo "drain_run: the switch exited $rc" >>"$log"
exit 0
