#!/usr/bin/env python3
"""Benchmark: a `site.yml` run that changes nothing, its wall time and its ten slowest tasks.

Against a running lab (`make lab`): one run first that brings the stack to its
configured state (not timed), then --runs timed runs of `ansible-playbook site.yml`, each
of which must report changed=0 on every host (the benchmark stops otherwise). It prints
the median, each run's time and task count, and the profile (profile_tasks) of the run
closest to the median: its ten slowest tasks.

    bench/site_nochange.py --runs 5 [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Tuple

PROJECT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 20.0
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)")
# profile_tasks' summary line: "role : Task name ---------- 1.23s"
PROFILE = re.compile(r"^(.+?)\s-{2,}\s+([0-9.]+)s$")


def run_site(env: Dict[str, str]) -> Tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(["ansible-playbook", "site.yml"], capture_output=True, text=True, cwd=PROJECT, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit("site.yml failed (exit %d):\n%s\n%s" % (done.returncode, done.stdout[-3000:], done.stderr[-2000:]))
    return seconds, done.stdout


def recap(output: str) -> Dict[str, Dict[str, int]]:
    hosts = {}
    for line in output.splitlines():
        match = RECAP.match(line.strip())
        if match:
            ok, changed, _, failed, skipped = (int(n) for n in match.groups()[1:])
            hosts[match.group(1)] = {"ok": ok, "changed": changed, "failed": failed, "skipped": skipped}
    return hosts


def slowest(output: str, count: int = 10) -> List[Tuple[str, float]]:
    after_recap = output.split("PLAY RECAP", 1)[-1]
    tasks = [(m.group(1).strip(), float(m.group(2))) for m in map(PROFILE.match, after_recap.splitlines()) if m]
    return sorted(tasks, key=lambda task: -task[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", help="write the figures here as JSON")
    args = parser.parse_args()
    if args.runs < 1:
        sys.exit("--runs must be at least 1")
    env = dict(os.environ, PROFILE_TASKS_TASK_OUTPUT_LIMIT="200", PROFILE_TASKS_SORT_ORDER="descending",
               ANSIBLE_NOCOLOR="1")

    run_site(env)  # to the configured state first: what follows must change nothing
    runs = []
    for number in range(1, args.runs + 1):
        seconds, output = run_site(env)
        hosts = recap(output)
        changed = {host: figures["changed"] for host, figures in hosts.items() if figures["changed"]}
        if not hosts or changed:
            sys.exit("run %d changed something (%s): not a no-change run" % (number, changed or "no recap"))
        tasks = sum(figures["ok"] + figures["skipped"] for figures in hosts.values())
        runs.append({"seconds": round(seconds, 2), "tasks": tasks, "output": output})
        print("run %d: %.2f s, %d tasks, changed=0" % (number, seconds, tasks), flush=True)

    median = statistics.median(run["seconds"] for run in runs)
    typical = min(runs, key=lambda run: abs(run["seconds"] - median))
    top = slowest(typical["output"])
    print("\nmedian of %d runs: %.2f s (goal: under %.0f s), %d tasks" % (len(runs), median, GOAL_SECONDS,
                                                                          typical["tasks"]))
    print("the ten slowest tasks of the run closest to the median:")
    for name, seconds in top:
        print("  %6.2f s  %s" % (seconds, name))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "median_seconds": median, "goal_seconds": GOAL_SECONDS,
            "runs": [{k: v for k, v in run.items() if k != "output"} for run in runs],
            "slowest_tasks": [{"task": name, "seconds": seconds} for name, seconds in top],
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
