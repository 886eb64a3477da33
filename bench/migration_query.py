#!/usr/bin/env python3
"""Benchmark: django_migration state=query through Ansible against one bare showmigrations.

The figure: a `state: query` task with the graph kept for the image (`graph_cache`)
must take at most 1.0 times one bare `docker exec api python manage.py showmigrations
--plan`, so that the module, through Ansible, beats typing the command. One
ansible-playbook run does RUNS rounds (after one warm-up round that is not counted and
that keeps the image's graph), each of seven tasks in a row:

- Cached: `django_migration: {state: query, container: api, graph_cache: ...}`, the
  answer from the graph kept for the image and one read of django_migrations (no
  Django start), its duration as Ansible measures it (the ansible.posix.json stdout
  callback: task start to result);
- Query: `django_migration: {state: query, container: api}` without the cache (one
  Django start in the container, the probe), measured the same way;
- Bare: the bare command, timed on the lab server itself (perf_counter around the
  `docker exec` in a Python timer run there; the task's own Ansible cost is not counted);
- Probe: the module's own `docker exec -i -w /app api python3 - <request>` with the
  probe source on stdin, timed the same way: Django's part of a query, without Ansible;
- Ping: `ansible.builtin.ping`, Ansible's own cost per task over this connection
  (fork, transfer, Python and AnsiballZ start on the server);
- Command: the bare command as an `ansible.builtin.command` task on the server, its
  duration as Ansible measures it: the same question asked through Ansible without
  the module (text to parse instead of JSON);
- Remote: the bare command from the controller, as an operator types it against a
  host (`docker exec SERVER docker exec api python manage.py showmigrations --plan`,
  timed on the controller): the hop to the host that every task pays, in the bare way.

The rounds interleave the kinds, so drift in the machine's load (other Molecule
scenarios) hits them alike. It prints the medians, the ratio query/bare (of the
medians, and the median of the per-round ratios) and the playbook's wall time,
and with --json writes every sample. Exit 1 when the ratio misses the target.

    bench/migration_query.py --server depotix-lab --runs 20

Run from anywhere with the venv on PATH, against a running lab server (make lab, or
a Molecule instance such as depotix-migration_module). It only reads: nothing is
migrated and nothing is written on the server.
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
TARGET_RATIO = 1.0
KINDS = ("cached", "query", "bare", "probe", "ping", "command", "remote")

# Runs on the lab server (python3 -c TIMER MODE CONTAINER REQUEST): one docker exec, prints its seconds.
SERVER_TIMER = r"""
import subprocess, sys, time
mode, container, request = sys.argv[1:4]
probe = sys.stdin.read() if mode == "probe" else None
if mode in ("bare", "remote"):
    argv = ["docker", "exec", container, "python", "manage.py", "showmigrations", "--plan"]
    if mode == "remote":  # from the controller, through the host: docker exec SERVER docker exec ...
        argv[:0] = ["docker", "exec", sys.argv[4]]
else:
    argv = ["docker", "exec", "-i", "-w", "/app", container, "python3", "-", request]
start = time.perf_counter()
done = subprocess.run(argv, input=probe, capture_output=True, text=True)
elapsed = time.perf_counter() - start
if done.returncode != 0 or "0001_initial" not in done.stdout:
    sys.exit("%s failed (exit %d): %s" % (" ".join(argv[:8]), done.returncode, done.stderr[-500:]))
print(elapsed)
"""

# The request the module sends for state=query with its default options (django_migration_docker.invoke).
QUERY_REQUEST = json.dumps(
    {"action": "query", "grace": 30, "manage_py": "manage.py", "settings": None, "timeout": 300}, sort_keys=True
)


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="depotix-lab", help="lab server container (default depotix-lab)")
    parser.add_argument("--container", default="api", help="API container inside the server (default api)")
    parser.add_argument("--runs", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--graph-cache", default="/var/lib/depotix/migration-graphs",
                        help="graph_cache directory on the server (default: the api role's)")
    parser.add_argument("--db-container", default="server-postgres-1", help="database container (the lab's)")
    parser.add_argument("--db-name", default="depotix", help="application database (the lab's)")
    parser.add_argument("--json", type=Path, help="write every sample to this file")
    return parser.parse_args(argv)


def yaml_string(text: str) -> str:
    """Return text as a YAML double-quoted scalar that Ansible never templates."""
    return "!unsafe " + json.dumps(text)


def round_tasks(label: str, container: str, cache: Dict[str, str]) -> str:
    """Return one round's seven tasks (label: 'warm-up' or a round number)."""
    timer = ("      ansible.builtin.command:\n        argv: [python3, -c, '{{{{ bench_timer }}}}', {mode}, %s, "
             "'{{{{ bench_request }}}}', '{{{{ inventory_hostname }}}}']\n" % container)
    return (
        f"    - name: cached {label}\n"
        f"      django_migration:\n        state: query\n        container: {container}\n"
        f"        graph_cache: {cache['graph_cache']}\n        database_container: {cache['db_container']}\n"
        f"        database_name: {cache['db_name']}\n"
        f"    - name: query {label}\n"
        f"      django_migration:\n        state: query\n        container: {container}\n"
        f"    - name: bare {label}\n{timer.format(mode='bare')}      changed_when: false\n"
        f"    - name: probe {label}\n{timer.format(mode='probe')}        stdin: '{{{{ bench_probe }}}}'\n"
        f"      changed_when: false\n"
        f"    - name: ping {label}\n      ansible.builtin.ping:\n"
        f"    - name: command {label}\n      ansible.builtin.command:\n"
        f"        argv: [docker, exec, {container}, python, manage.py, showmigrations, --plan]\n"
        f"      changed_when: false\n"
        f"    - name: remote {label}\n{timer.format(mode='remote')}      delegate_to: localhost\n"
        f"      vars:\n        ansible_python_interpreter: '{{{{ ansible_playbook_python }}}}'\n"
        f"      changed_when: false\n"
    )


def probe_program() -> str:
    """Return the program django_migration sends into the container (protocol, then probe)."""
    import ansible.module_utils

    # The project's module_utils import as ansible.module_utils.<name>, as ansible.cfg makes them.
    ansible.module_utils.__path__.append(str(PROJECT / "module_utils"))
    from ansible.module_utils.django_migration_docker import container_program

    return container_program()


def playbook(container: str, runs: int, cache: Dict[str, str]) -> str:
    """Return the benchmark playbook: a warm-up round, then ``runs`` timed rounds."""
    header = (
        "---\n- name: Benchmark django_migration state=query\n  hosts: all\n  gather_facts: false\n  vars:\n"
        f"    bench_timer: {yaml_string(SERVER_TIMER)}\n"
        f"    bench_request: {yaml_string(QUERY_REQUEST)}\n"
        f"    bench_probe: {yaml_string(probe_program())}\n"
        "  tasks:\n"
    )
    rounds = [round_tasks("warm-up", container, cache)]
    rounds += [round_tasks("%03d" % n, container, cache) for n in range(1, runs + 1)]
    return header + "".join(rounds)


def task_seconds(task: Dict) -> float:
    duration = task["task"]["duration"]
    start, end = (datetime.fromisoformat(duration[key].rstrip("Z")) for key in ("start", "end"))
    return (end - start).total_seconds()


def sample(task: Dict, server: str) -> float:
    """Return a task's sample: the server-side timer's seconds, or the task's duration."""
    name, result = task["task"]["name"], task["hosts"][server]
    if result.get("failed") or result.get("unreachable"):
        sys.exit("task %s failed: %s" % (name, result.get("msg") or result.get("stderr") or result))
    if name.startswith(("bare", "probe", "remote")):
        return float(result["stdout"])
    if name.startswith("command") and "0001_initial" not in result["stdout"]:
        sys.exit("task %s did not list the migrations: %s" % (name, result.get("stderr")))
    if name.startswith("query") and result["runner"]["kind"] != "exec":
        sys.exit("task %s did not query through docker exec: %s" % (name, result["runner"]))
    if name.startswith("cached") and result["source"] != "cache":
        sys.exit("task %s was not answered from the graph kept: %s" % (name, result.get("graph_cache")))
    return task_seconds(task)


def run_benchmark(server: str, container: str, runs: int, cache: Dict[str, str]) -> Dict:
    """Run the playbook once; return the samples per kind (warm-up dropped) and the wall time."""
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),  # the project's settings: library, pipelining
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        # Only the JSON callback (profile_tasks would write into the JSON on stdout); an empty list crashes ansible.
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",
    )
    with tempfile.TemporaryDirectory(prefix="bench-migration-query-") as tmp:
        path = Path(tmp) / "migration_query.yml"
        path.write_text(playbook(container, runs, cache), encoding="utf-8")
        # Connection settings in the inventory, not -e: the `remote` task runs on the controller.
        inventory = Path(tmp) / "inventory"
        inventory.write_text("%s ansible_connection=community.docker.docker ansible_python_interpreter=/usr/bin/python3\n"
                             % server, encoding="utf-8")
        argv = ["ansible-playbook", "-i", str(inventory), str(path)]
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, cwd=PROJECT)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit("ansible-playbook failed (exit %d):\n%s\n%s" % (done.returncode, done.stdout[-3000:], done.stderr))
    tasks = [t for t in json.loads(done.stdout)["plays"][0]["tasks"] if not t["task"]["name"].endswith("warm-up")]
    samples = {kind: [sample(t, server) for t in tasks if t["task"]["name"].startswith(kind + " ")] for kind in KINDS}
    return {"samples": samples, "wall": wall, "tasks": len(tasks) + len(KINDS)}


def ms(seconds: float) -> str:
    return "%.0f ms" % (seconds * 1000)


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    cache = {"graph_cache": args.graph_cache, "db_container": args.db_container, "db_name": args.db_name}
    result = run_benchmark(args.server, args.container, args.runs, cache)
    load_after = os.getloadavg()[0]
    samples = result["samples"]
    median = {kind: statistics.median(samples[kind]) for kind in KINDS}
    ratio = median["cached"] / median["bare"]
    paired = statistics.median(q / b for q, b in zip(samples["cached"], samples["bare"]))

    print("django_migration state=query vs bare showmigrations --plan: %s (container %s), %d rounds"
          % (args.server, args.container, args.runs))
    print("  load average %.1f before, %.1f after (%d cores)" % (load_before, load_after, os.cpu_count() or 0))
    rows = [
        ("cached", "django_migration query task, graph kept (Ansible's)"),
        ("query", "django_migration query task, Django started (Ansible's)"),
        ("bare", "bare showmigrations --plan (timed on the server)"),
        ("probe", "the module's probe alone (timed on the server)"),
        ("ping", "ansible.builtin.ping task (Ansible's duration)"),
        ("command", "showmigrations --plan as a command task (Ansible's)"),
        ("remote", "bare showmigrations from the controller"),
    ]
    for kind, label in rows:
        print("  %-53s median %8s  (min %s, max %s)"
              % (label, ms(median[kind]), ms(min(samples[kind])), ms(max(samples[kind]))))
    print("  ratio cached/bare: %.2f of the medians, %.2f median of the rounds (target <= %.1f: %s)"
          % (ratio, paired, TARGET_RATIO, "met" if ratio <= TARGET_RATIO else "MISSED"))
    print("  ratio query/bare without the cache: %.2f (one Django start in the container)"
          % (median["query"] / median["bare"]))
    print("  ratio probe/bare: %.2f (Django's part of a query); ping/bare: %.2f (Ansible's part)"
          % (median["probe"] / median["bare"], median["ping"] / median["bare"]))
    print("  ratio cached/command: %.2f (the same question asked through an Ansible command task); "
          "cached/remote: %.2f (the bare command from the controller)"
          % (median["cached"] / median["command"], median["cached"] / median["remote"]))
    print("  ansible-playbook wall time %.1f s for %d tasks; the %d cached query tasks took %.1f s of it"
          % (result["wall"], result["tasks"], args.runs, sum(samples["cached"])))
    if args.json:
        args.json.write_text(json.dumps({
            "server": args.server, "container": args.container, "runs": args.runs,
            "load": [load_before, load_after], "median": median, "ratio": ratio, "ratio_paired": paired,
            "samples": samples, "playbook_wall": result["wall"],
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }, indent=2) + "\n", encoding="utf-8")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
