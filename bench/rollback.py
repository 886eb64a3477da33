#!/usr/bin/env python3
"""Benchmark: `rollback.yml -e scenario=1` end to end against the bare commands doing the same work.

The runbook's scenario 1 by hand, on the lab server with release 2.0 deployed: a dump
(`pg_dump -Fc`), its checksum (`sha256sum`), a look into it (`pg_restore --list`),
`python manage.py migrate inventory 0007` in the API container, the integrity queries and
one `/healthz`. Ours is the whole play from the controller: plan, verified backup,
migrate back, integrity report. Each round times both, in alternating order, with the
migration taken forward again between them (not timed), so both start from the same
state. The bare side is timed from the controller too, through one `docker exec` into the
lab server (the hop every Ansible task pays).

    bench/rollback.py --server depotix-lab --rounds 5 [--movements 1000000] [--json FILE]

Run against a running lab (`make lab`); it deploys 2.0 first when another release runs,
and with --movements adds stock movements (SQL, not timed) until there are that many.
It prints the medians, the ratio ours/bare and each round's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List

PROJECT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 3.0
DB = "server-postgres-1"
INTEGRITY_SQL = (
    "SELECT json_build_object('movements', (SELECT count(*) FROM inventory_stockmovement), "
    "'orphaned', (SELECT count(*) FROM inventory_stockmovement m WHERE NOT EXISTS "
    "(SELECT 1 FROM inventory_inventoryitem i WHERE i.id = m.item_id)), "
    "'negative', (SELECT count(*) FROM inventory_inventoryitem WHERE quantity < 0))"
)
# The bare commands, in the lab server (bash -c): what an operator types for scenario 1.
BARE = f"""
set -euo pipefail
dump=/root/bench-rollback.dump
docker exec {DB} pg_dump -Fc -U postgres depotix > "$dump"
sha256sum "$dump" > "$dump.sha256"
docker exec -i {DB} pg_restore --list < "$dump" > /dev/null
docker exec api python manage.py migrate inventory 0007 > /dev/null
docker exec {DB} psql -X -A -t -U postgres -d depotix -c "{INTEGRITY_SQL}" > /dev/null
python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1/healthz", timeout=5).read()'
rm -f "$dump" "$dump.sha256"
"""
# Back to 2.0's schema between timed runs, then a settled database (the writes of the
# migration flushed, its dead rows vacuumed), so that no timed run pays for the last one.
FORWARD = f"""
docker exec api python manage.py migrate inventory > /dev/null
docker exec {DB} psql -X -q -U postgres -d depotix -c 'VACUUM ANALYZE' -c CHECKPOINT
"""
# The tasks on the host that scenario 1 needs: take the lock, read the ledger (with the
# record of an interrupted rollback), plan with Django, integrity SQL and /healthz before,
# the dump, the migrate, integrity SQL and /healthz after, the report, give the lock back.
TASKS_NEEDED = 11
# The floor of any play doing that: ansible-playbook with as many trivial tasks on the host.
FLOOR_PLAY = """---
- name: The floor of a play with {count} tasks on the host
  hosts: api
  gather_facts: false
  tasks:
{tasks}"""
FLOOR_TASK = """    - name: Trivial task {number} on the host
      ansible.builtin.ping:
"""


def run(argv: List[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, cwd=PROJECT, **kwargs)
    if done.returncode != 0:
        sys.exit("%s failed (exit %d):\n%s\n%s" % (" ".join(argv[:6]), done.returncode, done.stdout[-3000:],
                                                   done.stderr[-3000:]))
    return done


def on_server(server: str, script: str) -> float:
    start = time.perf_counter()
    run(["docker", "exec", server, "bash", "-c", script])
    return time.perf_counter() - start


def ours(env: Dict[str, str]) -> float:
    start = time.perf_counter()
    run(["ansible-playbook", "rollback.yml", "-e", "scenario=1"], env=env)
    return time.perf_counter() - start


def play_seconds(env: Dict[str, str], playbook: Path) -> float:
    start = time.perf_counter()
    run(["ansible-playbook", str(playbook)], env=env)
    return time.perf_counter() - start


def floor_playbook(directory: Path, count: int) -> Path:
    """Write a playbook of ``count`` ping tasks on the api host into ``directory``; return its path."""
    path = directory / ("floor_%d.yml" % count)
    tasks = "".join(FLOOR_TASK.format(number=number + 1) for number in range(count))
    path.write_text(FLOOR_PLAY.format(count=count, tasks=tasks), encoding="utf-8")
    return path


def movements(server: str) -> int:
    out = run(["docker", "exec", server, "docker", "exec", DB, "psql", "-X", "-A", "-t", "-U", "postgres", "-d",
               "depotix", "-c", "SELECT count(*) FROM inventory_stockmovement"]).stdout
    return int(out.strip())


def add_movements(server: str, wanted: int) -> None:
    """Insert IN movements of one unit on the first item until there are ``wanted`` (not timed)."""
    missing = wanted - movements(server)
    if missing <= 0:
        return
    sql = (
        "INSERT INTO inventory_stockmovement (item_id, type, qty_base, created_by_id, created_at, note) "
        "SELECT i.first, 'IN', 1, u.first, now() - n * interval '1 second', 'bench movement ' || n "
        f"FROM generate_series(1, {missing}) n, (SELECT min(id) AS first FROM inventory_inventoryitem) i, "
        "(SELECT min(id) AS first FROM auth_user) u"
    )
    run(["docker", "exec", server, "docker", "exec", DB, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U",
         "postgres", "-d", "depotix", "-c", sql, "-c", "VACUUM ANALYZE"])


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="depotix-lab")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--movements", type=int, default=0, help="stock movements to have first (0: as it is)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"))
    env.setdefault("DEPOTIX_SECRETS_DIR", str(PROJECT / ".lab-secrets"))

    run(["ansible-playbook", "deploy.yml", "-e", "api_release=2.0"], env=env)
    if args.movements:
        add_movements(args.server, args.movements)
    count = movements(args.server)
    samples: Dict[str, List[float]] = {"ours": [], "bare": [], "empty_play": [], "floor_play": []}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="depotix-bench-") as directory:
        plays = {"empty_play": floor_playbook(Path(directory), 0),
                 "floor_play": floor_playbook(Path(directory), TASKS_NEEDED)}
        for round_number in range(args.rounds):
            order = ("ours", "bare") if round_number % 2 == 0 else ("bare", "ours")
            for kind in order:
                seconds = ours(env) if kind == "ours" else on_server(args.server, BARE)
                samples[kind].append(seconds)
                on_server(args.server, FORWARD)  # back to 2.0's schema, not timed
            for kind, playbook in plays.items():
                samples[kind].append(play_seconds(env, playbook))
    load_after = os.getloadavg()[0]

    median = {kind: statistics.median(values) for kind, values in samples.items()}
    ratio = median["ours"] / median["bare"]
    # The least any play doing this work can take: its trivial tasks plus the bare work.
    floor = median["floor_play"] + median["bare"]
    per_task = (median["floor_play"] - median["empty_play"]) / TASKS_NEEDED
    print("rollback.yml -e scenario=1 vs the bare commands: %s, %d stock movements, %d rounds"
          % (args.server, count, args.rounds))
    print("  load average %.1f before, %.1f after (%d cores)" % (load_before, load_after, os.cpu_count() or 0))
    for kind, label in (("ours", "rollback.yml -e scenario=1 (controller wall time)"),
                        ("bare", "pg_dump, sha256sum, pg_restore --list, migrate, SQL, /healthz")):
        print("  %-62s median %6.2f s  (%s)" % (label, median[kind], ", ".join("%.2f" % v for v in samples[kind])))
    print("  ratio ours/bare: %.2f (target <= %.1f: %s)" % (ratio, TARGET_RATIO,
                                                           "met" if ratio <= TARGET_RATIO else "MISSED"))
    print("  floor: ansible-playbook alone %.2f s + %d trivial tasks on the host at %.2f s = %.2f s, plus the bare"
          " work = %.2f s, ratio %.2f" % (median["empty_play"], TASKS_NEEDED, per_task, median["floor_play"], floor,
                                         floor / median["bare"]))
    print("  above the floor: %.2f s (controller-side tasks and the modules' own work)" % (median["ours"] - floor))
    if args.json:
        args.json.write_text(json.dumps({
            "server": args.server, "movements": count, "rounds": args.rounds, "samples": samples,
            "median": median, "ratio": ratio, "load": [load_before, load_after],
            "tasks_needed": TASKS_NEEDED, "per_task": per_task, "floor": floor, "floor_ratio": floor / median["bare"],
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
