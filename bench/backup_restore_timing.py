#!/usr/bin/env python3
"""Time our backup and restore against bare pg_dump / pg_restore, on a lab server.

Runs on the server bench/backup_restore.yml deploys (as root, beside the database
container). Each round times, in alternating order so that caches and background load
favour neither side:

- backup: `pg_dump -Fc` out of the container into a file (bare) against
  `depotix-backup dump` (pg_dump -Fc in the same snapshot as the row counts, sha256,
  `pg_restore --list`, rename);
- restore of that same dump: a fresh database and a single-job `pg_restore` from stdin
  (bare) against `depotix-backup restore --keep-previous` (checksum and archive verified, a
  new database loaded with parallel jobs, its row counts compared with the record, swapped
  in): what restore.yml waits for before it starts the API again. Dropping the replaced
  database (after the health gate) is timed apart, as is our load step alone.

Before every timed step the database is checkpointed (untimed), so that no step pays
for writing out what the step before it loaded.

Prints one JSON document: every measurement, the medians and the ratios (ours / bare).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

DB_CONTAINER = "server-postgres-1"
SCRIPT = "/usr/local/sbin/depotix-backup"
SETTINGS = json.loads(Path("/etc/depotix/backup.json").read_text())
BARE_DUMP = Path("/root/bench-bare.dump")


def timed(argv: list[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command, fail on error; return (seconds, finished process)."""
    start = time.monotonic()
    done = subprocess.run(argv, check=True, **kwargs)
    return time.monotonic() - start, done


def psql(sql: str) -> str:
    return subprocess.run(["docker", "exec", DB_CONTAINER, "psql", "-X", "-A", "-t", "-U", "postgres", "-d",
                           "postgres", "-c", sql], check=True, capture_output=True, text=True).stdout.strip()


def settle() -> None:
    """Write out dirty buffers (untimed), so the next timed step starts from the same state."""
    psql("CHECKPOINT")


def bare_dump() -> float:
    settle()
    with BARE_DUMP.open("wb") as fh:
        seconds, _ = timed(["docker", "exec", DB_CONTAINER, "pg_dump", "-Fc", "-U", "postgres", "-d",
                            SETTINGS["database"]], stdout=fh)
    return seconds


def our_dump() -> tuple[float, dict]:
    settle()
    seconds, done = timed([SCRIPT, "dump", "--label", "bench"], capture_output=True, text=True)
    return seconds, json.loads(done.stdout)


def bare_restore(dump: Path) -> float:
    """createdb, then a single-job pg_restore from stdin (the dump is dropped afterwards, untimed)."""
    psql("DROP DATABASE IF EXISTS bench_bare")
    settle()
    start = time.monotonic()
    psql(f"CREATE DATABASE bench_bare OWNER {SETTINGS['owner']}")
    with dump.open("rb") as fh:
        subprocess.run(["docker", "exec", "-i", DB_CONTAINER, "pg_restore", "-U", "postgres", "-d", "bench_bare"],
                       stdin=fh, check=True)
    seconds = time.monotonic() - start
    psql("DROP DATABASE bench_bare")
    return seconds


def our_restore(name: str) -> tuple[float, dict[str, float]]:
    """depotix-backup restore, as restore.yml runs it before starting the API again (--keep-previous),
    then the drop of the replaced database that restore.yml does after the health gate (timed apart).

    Returns (seconds until the swap, seconds per phase: verify, load, count, swap, drop_previous).
    """
    settle()
    seconds, done = timed([SCRIPT, "restore", name, "--keep-previous"], capture_output=True, text=True)
    phases = json.loads(done.stdout)["phases"]
    phases["drop_previous"] = round(timed([SCRIPT, "discard-previous"], capture_output=True)[0], 2)
    return seconds, phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"bare_dump": [], "our_backup": [], "bare_restore": [], "our_restore": [],
                                    "our_restore_load": [], "our_drop_previous": []}
    dumps: list[dict] = []
    restore_phases: list[dict[str, float]] = []
    for round_number in range(args.repeats):
        ours_first = round_number % 2 == 1
        if ours_first:
            seconds, made = our_dump()
            runs["our_backup"].append(seconds)
            runs["bare_dump"].append(bare_dump())
        else:
            runs["bare_dump"].append(bare_dump())
            seconds, made = our_dump()
            runs["our_backup"].append(seconds)
        dumps.append(made)
        dump = Path(made["path"])
        if ours_first:
            seconds, phases = our_restore(dump.name)
            runs["bare_restore"].append(bare_restore(dump))
        else:
            runs["bare_restore"].append(bare_restore(dump))
            seconds, phases = our_restore(dump.name)
        runs["our_restore"].append(seconds)
        runs["our_restore_load"].append(phases["load"])
        runs["our_drop_previous"].append(phases["drop_previous"])
        restore_phases.append(phases)
    medians = {key: round(statistics.median(values), 2) for key, values in runs.items()}
    summary = {
        "rows": dumps[-1]["rows"], "stock_movements": dumps[-1]["tables"]["public.inventory_stockmovement"],
        "dump_bytes": dumps[-1]["size"], "bare_dump_bytes": BARE_DUMP.stat().st_size,
        "median_seconds": medians,
        "backup_ratio": round(medians["our_backup"] / medians["bare_dump"], 3),
        "restore_ratio": round(medians["our_restore"] / medians["bare_restore"], 3),
        "restore_load_ratio": round(medians["our_restore_load"] / medians["bare_restore"], 3),
        "restore_jobs": SETTINGS.get("jobs"), "restore_settings": SETTINGS.get("restore_settings"),
    }
    print(json.dumps({"summary": summary, "runs": {k: [round(v, 3) for v in vs] for k, vs in runs.items()},
                      "our_restore_phases": restore_phases,
                      "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                               "loadavg_at_end": os.getloadavg()},
                      "postgres": psql("SHOW server_version")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
