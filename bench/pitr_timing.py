#!/usr/bin/env python3
"""Point-in-time recovery benchmark: the lab server's side, and the summary on the controller.

bench/pitr.sh copies this file to the benchmark's lab server (/root/pitr_timing.py) and
runs its commands there with `docker exec` (as root, beside the database container);
everything it reaches is on that server (the database through `docker exec` and, for the
writer, 127.0.0.1:5432). `summarize` runs on the controller. Each command prints one JSON
document.

- prepare: the same state before every timed recovery: the previous round's extra
  movements deleted and vacuumed, a full pgBackRest backup (`depotix-backup pitr-backup
  --type full`), then --wal-rows movements inserted after it (the WAL a recovery replays),
  archived (`depotix-backup pitr-check`: a WAL switch, waited for) and checkpointed.
- bare: the bare recovery, timed here: `docker stop` of the database container, `docker
  volume create`, `pgbackrest restore` in a one-off container of the same image (`docker
  run --rm --user postgres --network none`, the repository and pgbackrest.conf mounted where
  the database container has them), then a PostgreSQL container of the same image, command,
  mounts and options on the new volume, polled until `SELECT pg_is_in_recovery()` says f.
  Its one difference: archive_mode=off, so that the timeline it promotes to (thrown away)
  leaves no history file in the repository, which a later recovery to the newest WAL would
  follow. Afterwards (not timed) the stack is put back as it was: the bare containers and
  volume removed, the database container started again, healthy, the API answering.
- state: what runs now (movements, timeline, live volume, the API's /healthz).
- rpo-kill: a writer (psycopg2, 127.0.0.1:5432, autocommit, one INSERT of its own sequence
  number per statement into bench_rpo, --rate a second) for --kill-after seconds, then
  `docker kill` (SIGKILL) of the database container mid-write; every acknowledged number
  with its time is kept in /root/bench-pitr/<run>.json.
- rpo-start: `docker start` of the killed container (crash recovery), then rpo-count.
- rpo-scratch: what the repository alone holds at the kill (the volume lost): the bare
  recovery, to the newest archived WAL, into a scratch volume and container, counted there,
  then removed.
- rpo-count: the acknowledged numbers against those in the database: rows and seconds lost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DB = "server-postgres-1"
SCRIPT = "/usr/local/sbin/depotix-backup"
SETTINGS_FILE = Path("/etc/depotix/backup.json")
DATA_DIR = "/var/lib/postgresql/data"
CONTAINER_REPO = "/var/lib/pgbackrest"
CONTAINER_CONFIG = "/etc/pgbackrest/pgbackrest.conf"
BARE_RESTORE = "bench-pitr-restore"
BARE_DB = "bench-pitr-postgres"
STATE_DIR = Path("/root/bench-pitr")
WAL_NOTE = "bench wal movement "
HEALTH_URL = "http://127.0.0.1:80/healthz"
# The writer's table: its own sequence numbers, one row per statement.
RPO_TABLE = ("CREATE TABLE IF NOT EXISTS bench_rpo (run text NOT NULL, n integer NOT NULL, "
             "at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run, n))")
# Bounds of every wait (seconds).
RECOVERY_TIMEOUT = 900
HEALTH_TIMEOUT = 180
POLL = 0.2


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def run(argv: list[str], check: bool = True, timeout: float = 600, **kwargs: Any) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and done.returncode != 0:
        raise SystemExit(f"pitr_timing: {' '.join(argv[:6])} ... failed (exit {done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-800:]}")
    return done


def psql(sql: str, container: str = DB, database: str = "depotix", check: bool = True,
         timeout: float = 900) -> str:
    return run(["docker", "exec", container, "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "postgres",
                "-d", database, "-c", sql], check=check, timeout=timeout).stdout.strip()


def settings() -> dict[str, Any]:
    return json.loads(SETTINGS_FILE.read_text())


def inspect(container: str) -> dict[str, Any]:
    return json.loads(run(["docker", "container", "inspect", container]).stdout)[0]


def data_volume(spec: dict[str, Any]) -> str:
    return next(m["Name"] for m in spec["Mounts"] if m["Destination"] == DATA_DIR)


def movements(container: str = DB) -> dict[str, int]:
    row = psql("SELECT count(*), count(*) FILTER (WHERE note LIKE '" + WAL_NOTE + "%') "
               "FROM inventory_stockmovement", container=container)
    total, wal = row.split("|")
    return {"movements": int(total), "wal_movements": int(wal)}


def api_health() -> int | str:
    try:
        with urllib.request.urlopen(HEALTH_URL, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__


def wait_api() -> float:
    """Wait until /healthz answers 200 through the edge; return the seconds waited."""
    started = time.monotonic()
    for _ in range(int(HEALTH_TIMEOUT / 0.5)):
        if api_health() == 200:
            return round(time.monotonic() - started, 2)
        time.sleep(0.5)
    raise SystemExit(f"pitr_timing: the API did not answer 200 at {HEALTH_URL} within {HEALTH_TIMEOUT} s")


def wait_healthy(container: str = DB) -> float:
    """Wait until the container's health check says healthy and psql answers; return the seconds waited."""
    started = time.monotonic()
    for _ in range(int(HEALTH_TIMEOUT / 0.5)):
        health = run(["docker", "inspect", "--format", "{{.State.Health.Status}}", container], check=False).stdout
        if health.strip() == "healthy" and psql("SELECT 1", container=container, check=False) == "1":
            return round(time.monotonic() - started, 2)
        time.sleep(0.5)
    raise SystemExit(f"pitr_timing: {container} did not report healthy within {HEALTH_TIMEOUT} s")


def wait_promoted(container: str) -> int:
    """Poll `SELECT pg_is_in_recovery()` until f; return the number of polls. Fail if the container stops."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    polls = 0
    while time.monotonic() < deadline:
        polls += 1
        done = run(["docker", "exec", container, "psql", "-X", "-At", "-U", "postgres", "-d", "postgres", "-c",
                    "SELECT pg_is_in_recovery()"], check=False, timeout=60)
        if done.returncode == 0 and done.stdout.strip() == "f":
            return polls
        if polls % 10 == 0:
            state = run(["docker", "inspect", "--format", "{{.State.Status}}", container], check=False).stdout.strip()
            if state != "running":
                logs = run(["docker", "logs", "--tail", "15", container], check=False)
                raise SystemExit(f"pitr_timing: {container} is {state}: {(logs.stdout + logs.stderr)[-1500:]}")
        time.sleep(POLL)
    raise SystemExit(f"pitr_timing: {container} was still in recovery after {RECOVERY_TIMEOUT} s")


def restore_argv(config: dict[str, Any], image: str, volume: str) -> list[str]:
    """`pgbackrest restore` (newest backup set, to the end of the archived WAL) in a one-off container."""
    return ["docker", "run", "--rm", "--name", BARE_RESTORE, "--user", "postgres", "--network", "none",
            "--mount", f"type=volume,source={volume},target={DATA_DIR}",
            "--mount", f"type=bind,source={config['pitr_repo_dir']},target={CONTAINER_REPO}",
            "--mount", f"type=bind,source={config['pitr_config_file']},target={CONTAINER_CONFIG},readonly",
            "--entrypoint", "pgbackrest", image, f"--stanza={config['pitr_stanza']}", "restore"]


def postgres_argv(spec: dict[str, Any], name: str, volume: str) -> list[str]:
    """A PostgreSQL container like `spec` (image, command, mounts, init, security options) on `volume`.

    Without a network (it is polled through docker exec) and with archive_mode=off.
    """
    argv = ["docker", "run", "--detach", "--name", name, "--network", "none"]
    host = spec["HostConfig"]
    if host.get("Init"):
        argv.append("--init")
    for option in host.get("SecurityOpt") or []:
        argv += ["--security-opt", option]
    for variable in spec["Config"].get("Env") or []:
        if not variable.split("=", 1)[0].endswith("PASSWORD"):
            argv += ["--env", variable]
    for mount in spec["Mounts"]:
        if mount["Destination"] == DATA_DIR:
            argv += ["--mount", f"type=volume,source={volume},target={DATA_DIR}"]
        elif mount["Type"] == "bind":
            argv += ["--mount", f"type=bind,source={mount['Source']},target={mount['Destination']}"
                     + ("" if mount.get("RW", True) else ",readonly")]
    command = [arg for arg in spec["Config"]["Cmd"]
               if not re.match(r"^-c ?archive_(mode|command)=", arg)]
    return [*argv, spec["Config"]["Image"], *command, "-carchive_mode=off"]


def remove(container: str, volume: str | None = None) -> None:
    run(["docker", "rm", "--force", container], check=False)
    if volume:
        run(["docker", "volume", "rm", volume], check=False)


def cmd_prepare(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    deleted = psql(f"WITH gone AS (DELETE FROM inventory_stockmovement WHERE note LIKE '{WAL_NOTE}%' RETURNING 1) "
                   "SELECT count(*) FROM gone")
    psql("VACUUM ANALYZE inventory_stockmovement")
    psql(RPO_TABLE)
    backup = json.loads(run([SCRIPT, "pitr-backup", "--type", "full"], timeout=1800).stdout)
    lsn_before = psql("SELECT pg_current_wal_lsn()")
    if args.wal_rows:
        psql(f"""
            INSERT INTO inventory_stockmovement (item_id, type, qty_base, created_by_id, created_at, note)
            SELECT i.first + n % 1000, (ARRAY['IN', 'OUT', 'ADJUST'])[1 + n % 3], 1 + n % 97,
                   u.first + n % 3, now(), '{WAL_NOTE}' || n
            FROM generate_series(1, {int(args.wal_rows)}) n,
                 (SELECT min(id) AS first FROM inventory_inventoryitem WHERE sku LIKE 'BENCH-%') i,
                 (SELECT min(id) AS first FROM auth_user WHERE username LIKE 'bench%') u""")
    wal_bytes = int(float(psql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{lsn_before}')")))
    check = json.loads(run([SCRIPT, "pitr-check"], timeout=300).stdout)
    psql("CHECKPOINT")
    newest = backup.get("backup") or {}
    return {"deleted_wal_movements": int(deleted), "backup_set": newest.get("label"),
            "backup_seconds": backup.get("seconds"), "backup_size": newest.get("size"),
            "backup_repository_size": newest.get("repository_size"), "wal_rows": args.wal_rows,
            "wal_bytes_after_backup": wal_bytes, "last_archived_wal": check["archiver"]["last_archived_wal"],
            "database_bytes": int(psql("SELECT pg_database_size('depotix')")), **movements(),
            "seconds": round(time.monotonic() - started, 2)}


def cmd_bare(args: argparse.Namespace) -> dict[str, Any]:
    config, spec = settings(), inspect(DB)
    image = spec["Config"]["Image"]
    volume = "bench_pitr_bare_" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dt%H%M%Sz")
    remove(BARE_RESTORE)
    remove(BARE_DB)
    psql("CHECKPOINT")
    started_at = now_utc()
    try:
        start = time.monotonic()
        run(["docker", "stop", "--time", "120", DB], timeout=180)
        stopped = time.monotonic()
        run(["docker", "volume", "create", volume])
        run(restore_argv(config, image, volume), timeout=RECOVERY_TIMEOUT)
        restored = time.monotonic()
        run(postgres_argv(spec, BARE_DB, volume))
        polls = wait_promoted(BARE_DB)
        promoted = time.monotonic()
        recovered = movements(BARE_DB)
        timeline = psql("SELECT timeline_id FROM pg_control_checkpoint()", container=BARE_DB)
    finally:
        # Put the stack back as it was: the bare containers and volume go, the database starts again.
        put_back = time.monotonic()
        remove(BARE_RESTORE)
        remove(BARE_DB, volume)
        run(["docker", "start", DB])
        waited_db = wait_healthy(DB)
        waited_api = wait_api()
        put_back_seconds = round(time.monotonic() - put_back, 2)
    if args.expect_movements is not None and recovered["movements"] != args.expect_movements:
        raise SystemExit(f"pitr_timing: the bare recovery holds {recovered['movements']} movements, "
                         f"not {args.expect_movements}")
    return {"seconds": round(promoted - start, 3), "started_at": started_at,
            "phases": {"stop": round(stopped - start, 2), "volume_and_restore": round(restored - stopped, 2),
                       "start_replay_promote": round(promoted - restored, 2)},
            "polls": polls, "recovered": recovered, "recovered_timeline": int(timeline),
            "put_back_seconds": put_back_seconds, "database_healthy_after_seconds": waited_db,
            "api_healthy_after_seconds": waited_api, "after": state()}


def state() -> dict[str, Any]:
    spec = inspect(DB)
    return {**movements(), "timeline": int(psql("SELECT timeline_id FROM pg_control_checkpoint()")),
            "in_recovery": psql("SELECT pg_is_in_recovery()"), "volume": data_volume(spec),
            "api_health": api_health()}


def cmd_state(args: argparse.Namespace) -> dict[str, Any]:
    if args.wait_api:
        wait_api()
    current = state()
    if args.expect_movements is not None and current["movements"] != args.expect_movements:
        raise SystemExit(f"pitr_timing: the database holds {current['movements']} movements, "
                         f"not {args.expect_movements}: {json.dumps(current)}")
    return current


def superuser_password(spec: dict[str, Any]) -> str:
    source = next(m["Source"] for m in spec["Mounts"] if m["Destination"] == "/run/secrets/postgres_password")
    return Path(source).read_text().strip()


def archiver() -> dict[str, Any]:
    row = psql("SELECT json_build_object('last_archived_wal', last_archived_wal, 'last_archived_time', "
               "last_archived_time, 'seconds_since_archived', extract(epoch FROM now() - last_archived_time), "
               "'current_wal', pg_walfile_name(pg_current_wal_lsn()), 'now', now()) FROM pg_stat_archiver")
    return json.loads(row)


def cmd_rpo_kill(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg2  # the lab server's python3-psycopg2

    STATE_DIR.mkdir(exist_ok=True)
    psql(RPO_TABLE)
    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="depotix",
                                  password=superuser_password(inspect(DB)), connect_timeout=5,
                                  keepalives=1, keepalives_idle=2, keepalives_interval=1, keepalives_count=2,
                                  options="-c statement_timeout=5000")
    connection.autocommit = True
    acks: list[tuple[int, float]] = []
    outcome: dict[str, Any] = {}
    stop = threading.Event()
    max_rows = int(args.rate * args.max_seconds)

    def write() -> None:
        cursor = connection.cursor()
        start = time.monotonic()
        for n in range(1, max_rows + 1):
            if stop.is_set():
                outcome["stopped"] = "asked"
                return
            delay = start + (n - 1) / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                cursor.execute("INSERT INTO bench_rpo (run, n) VALUES (%s, %s)", (args.run, n))
            except psycopg2.Error as exc:
                outcome.update(stopped="error", error=str(exc).strip().splitlines()[0][:200], error_at=time.time(),
                               unacknowledged=n)
                return
            acks.append((n, time.time()))
        outcome["stopped"] = "max rows"

    writer = threading.Thread(target=write, daemon=True)
    started = time.time()
    writer.start()
    writer.join(timeout=args.kill_after)
    if not writer.is_alive():
        raise SystemExit(f"pitr_timing: the writer ended before the kill: {outcome}")
    before_kill = archiver()
    killed_at = time.time()
    run(["docker", "kill", "--signal", "KILL", DB])
    kill_returned_at = time.time()
    writer.join(timeout=30)
    stop.set()
    writer.join(timeout=10)
    state_after = run(["docker", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", DB]).stdout.split()
    record = {"run": args.run, "rate": args.rate, "started": started, "killed_at": killed_at,
              "kill_returned_at": kill_returned_at, "acks": acks, "outcome": outcome,
              "archiver_before_kill": before_kill}
    (STATE_DIR / f"{args.run}.json").write_text(json.dumps(record))
    duration = (acks[-1][1] - acks[0][1]) if len(acks) > 1 else 0
    return {"run": args.run, "acknowledged": len(acks), "last_acknowledged": acks[-1][0] if acks else 0,
            "seconds_written": round(killed_at - started, 2),
            "rate_achieved": round((len(acks) - 1) / duration, 2) if duration else None,
            "kill_command_seconds": round(kill_returned_at - killed_at, 3),
            "writer": {k: v for k, v in outcome.items() if k != "error_at"},
            "archiver_before_kill": before_kill, "container_after_kill": " ".join(state_after),
            "killed_at": dt.datetime.fromtimestamp(killed_at, dt.timezone.utc).isoformat(timespec="milliseconds")}


def count(run_name: str, container: str = DB) -> dict[str, Any]:
    record = json.loads((STATE_DIR / f"{run_name}.json").read_text())
    acked = {n: at for n, at in record["acks"]}
    # The table is in every backup since the RPO part's (prepare creates it); a recovery without it kept no row.
    present = {int(n) for n in psql("SELECT n FROM bench_rpo WHERE run = '" + run_name + "'",
                                    container=container).split()}
    lost = sorted(set(acked) - present)
    last_ack = max(acked) if acked else 0
    newest_kept = max((n for n in acked if n in present), default=0)
    # Seconds lost: from the newest acknowledged row kept to the last one acknowledged (their acknowledgements).
    seconds_lost = 0.0
    if lost:
        seconds_lost = round(acked[last_ack] - (acked[newest_kept] if newest_kept else record["started"]), 2)
    return {"last_acknowledged": last_ack, "highest_present": max(present, default=0), "present": len(present),
            "acknowledged_lost": len(lost), "first_lost": lost[0] if lost else None,
            "rows_lost": last_ack - newest_kept, "seconds_lost": seconds_lost,
            "present_unacknowledged": len(present - set(acked)),
            "seconds_between_last_archived_and_kill": record["archiver_before_kill"]["seconds_since_archived"]}


def cmd_rpo_count(args: argparse.Namespace) -> dict[str, Any]:
    return count(args.run)


def cmd_rpo_start(args: argparse.Namespace) -> dict[str, Any]:
    start = time.monotonic()
    run(["docker", "start", DB])
    for _ in range(int(HEALTH_TIMEOUT / POLL)):
        if psql("SELECT 1", check=False, timeout=30) == "1":
            break
        time.sleep(POLL)
    accepting = round(time.monotonic() - start, 2)
    healthy = wait_healthy(DB)
    seconds = round(time.monotonic() - start, 2)
    killed_at = json.loads((STATE_DIR / f"{args.run}.json").read_text())["killed_at"]
    crash = run(["docker", "logs", "--since", f"{killed_at:.3f}", DB], check=False)
    lines = [line for line in (crash.stdout + crash.stderr).splitlines()
             if re.search(r"not properly shut down|redo (starts|done)|automatic recovery|ready to accept", line)]
    return {"seconds_to_accept_queries": accepting, "seconds_to_healthy": seconds, "log": lines[-5:], **count(args.run),
            "api_healthy_after_seconds": wait_api()}


def cmd_rpo_scratch(args: argparse.Namespace) -> dict[str, Any]:
    """The repository alone, as the kill left it: recovered into a scratch volume, counted, removed."""
    config, spec = settings(), inspect(DB)
    volume = "bench_pitr_scratch_" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dt%H%M%Sz")
    remove(BARE_RESTORE)
    remove(BARE_DB)
    try:
        start = time.monotonic()
        run(["docker", "volume", "create", volume])
        run(restore_argv(config, spec["Config"]["Image"], volume), timeout=RECOVERY_TIMEOUT)
        run(postgres_argv(spec, BARE_DB, volume))
        wait_promoted(BARE_DB)
        seconds = round(time.monotonic() - start, 2)
        counted = count(args.run, BARE_DB)
    finally:
        remove(BARE_RESTORE)
        remove(BARE_DB, volume)
    return {"recovery_seconds": seconds, **counted}


# ---- on the controller


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def clock_seconds(text: str) -> float:
    hours, minutes, seconds = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def play_profile(log: Path, wall: float | None = None) -> dict[str, Any]:
    """From an ansible-playbook log (profile_tasks, every task listed): its slowest tasks, and for a
    recovery to a point in time its three phases: up to the database's stop (preflight, restore
    point, API stopped, WAL archived), from the stop to the promotion (stop, pgbackrest restore,
    container started, health, recovery waited for), and after (archiving checked, migrations,
    API started and health-gated, old data dropped)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    stamp = r"\n\w+ \d+ \w+ \d+\s+[\d:]+ [+-]\d+ \([\d:.]+\)\s+([\d:.]+) \*+"
    banners = [(m.group(1), clock_seconds(m.group(2)))
               for m in re.finditer(r"^TASK \[(.+?)\] \*+" + stamp, text, flags=re.MULTILINE)]
    recap_clock = re.search(r"^TASKS RECAP \*+" + stamp, text, flags=re.MULTILINE)
    tasks = [(m.group(1).strip(), float(m.group(2)))
             for m in re.finditer(r"^(.+?) -{3,} (\d+\.\d+)s$", text, flags=re.MULTILINE)]
    recap = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", text)
    restored = re.search(r"in ([\d.]+) s of restore", text)
    profile: dict[str, Any] = {
        "slowest_tasks": [{"task": t, "seconds": s} for t, s in sorted(tasks, key=lambda x: -x[1])[:8]],
        "tasks_timed": len(tasks), "task_seconds": round(sum(s for _, s in tasks), 2),
        "recap": dict(zip(["ok", "changed", "unreachable", "failed", "skipped"],
                          map(int, recap.groups()))) if recap else None,
        "pgbackrest_restore_seconds": float(restored.group(1)) if restored else None}
    end = clock_seconds(recap_clock.group(1)) if recap_clock else None
    if end is not None and wall is not None:
        profile["outside_tasks_seconds"] = round(wall - end, 2)
    stop = next((at for name, at in banners if name.startswith("Stop the database")), None)
    after = next((at for name, at in banners if name.startswith("Check that WAL archiving works")), None)
    if stop is not None and after is not None and end is not None:
        profile["phases"] = {"up_to_the_stop": round(stop, 2), "stop_to_promoted": round(after - stop, 2),
                             "after_promoted": round(end - after, 2)}
    return profile


def cmd_summarize(args: argparse.Namespace) -> dict[str, Any]:
    samples = [json.loads(line) for line in Path(args.samples).read_text().splitlines() if line.strip()]
    setup = json.loads(Path(args.setup).read_text())
    runs: dict[str, list[float]] = {"ours": [], "bare": [], "pg_restore": []}
    for sample in samples:
        if sample.get("kind") in runs:
            runs[sample["kind"]].append(sample["seconds"])
            if "log" in sample:
                sample["play"] = play_profile(Path(sample["log"]), sample["seconds"])
    medians = {kind: median(values) for kind, values in runs.items()}
    rpo = [s for s in samples if s.get("kind") == "rpo"]
    for sample in rpo:
        if "log" in sample:
            sample["play"] = play_profile(Path(sample["log"]), sample["restore_play"]["seconds"])
    ours_pgbackrest = [s["play"]["pgbackrest_restore_seconds"] for s in samples
                       if s.get("kind") == "ours" and s["play"]["pgbackrest_restore_seconds"] is not None]
    bare_restore = [s["bare"]["phases"]["volume_and_restore"] for s in samples if s.get("kind") == "bare"]
    summary = {
        "movements_restored": setup.get("movements_after_generation"), "wal_rows_after_backup": setup.get("wal_rows"),
        "repeats": setup.get("repeats"), "median_seconds": medians,
        "ratio_ours_bare": round(medians["ours"] / medians["bare"], 3) if medians["ours"] and medians["bare"] else None,
        "ratio_ours_pg_restore": round(medians["ours"] / medians["pg_restore"], 3)
        if medians["ours"] and medians["pg_restore"] else None,
        "target_ratio_ours_bare": 1.2,
        "median_pgbackrest_restore_seconds": {"ours (the play's pitr-restore step)": median(ours_pgbackrest),
                                              "bare (volume create + restore)": median(bare_restore)},
    }
    ours_phases = [s["play"].get("phases", {}) | {"outside_tasks": s["play"].get("outside_tasks_seconds")}
                   for s in samples if s.get("kind") == "ours"]
    summary["median_phases_seconds"] = {
        "ours": {k: median([p[k] for p in ours_phases if p.get(k) is not None])
                 for k in ("up_to_the_stop", "stop_to_promoted", "after_promoted", "outside_tasks")},
        "bare": {k: median([s["bare"]["phases"][k] for s in samples if s.get("kind") == "bare"])
                 for k in ("stop", "volume_and_restore", "start_replay_promote")}}
    keys = ("last_acknowledged", "highest_present", "rows_lost", "seconds_lost", "acknowledged_lost",
            "present_unacknowledged")
    for sample in rpo:
        killed = sample["killed"]
        figures = {"acknowledged": killed["acknowledged"], "rate_achieved": killed["rate_achieved"],
                   "seconds_written": killed["seconds_written"],
                   "seconds_since_last_archived_wal_at_kill": killed["archiver_before_kill"]["seconds_since_archived"]}
        if sample["run"] == "crash":
            figures["docker_start"] = {k: sample["docker_start"][k] for k in keys + ("seconds_to_accept_queries",)}
        else:
            figures["repository_alone"] = {k: sample["repository_alone"][k] for k in keys}
            after = sample["restore_play"]["after"]
            figures["restore_play"] = {"rc": sample["restore_play"]["rc"], "seconds": sample["restore_play"]["seconds"],
                                       **({k: after[k] for k in keys} if after else {})}
        summary.setdefault("rpo", {})[sample["run"]] = figures
    return {"summary": summary, "runs": runs, "setup": setup, "samples": [s for s in samples if s.get("kind") != "rpo"],
            "rpo": rpo, "controller": {"cpus": os.cpu_count(), "kernel": platform.release(),
                                       "loadavg_at_end": os.getloadavg()},
            "finished": now_utc()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser("prepare")
    prepare.add_argument("--wal-rows", type=int, default=20000)
    bare = sub.add_parser("bare")
    bare.add_argument("--expect-movements", type=int)
    state_parser = sub.add_parser("state")
    state_parser.add_argument("--expect-movements", type=int)
    state_parser.add_argument("--wait-api", action="store_true")
    kill = sub.add_parser("rpo-kill")
    kill.add_argument("--run", required=True, choices=["crash", "pitr"])
    kill.add_argument("--rate", type=float, default=20.0)
    kill.add_argument("--kill-after", type=float, default=100.0)
    kill.add_argument("--max-seconds", type=float, default=600.0)
    for name in ("rpo-start", "rpo-scratch", "rpo-count"):
        sub.add_parser(name).add_argument("--run", required=True, choices=["crash", "pitr"])
    summarize = sub.add_parser("summarize")
    summarize.add_argument("--samples", required=True)
    summarize.add_argument("--setup", required=True)
    args = parser.parse_args()
    if args.command == "rpo-kill" and not 0 < args.kill_after < args.max_seconds:
        parser.error("--kill-after must be between 0 and --max-seconds")
    handler = {"prepare": cmd_prepare, "bare": cmd_bare, "state": cmd_state, "rpo-kill": cmd_rpo_kill,
               "rpo-start": cmd_rpo_start, "rpo-scratch": cmd_rpo_scratch, "rpo-count": cmd_rpo_count,
               "summarize": cmd_summarize}[args.command]
    print(json.dumps(handler(args), indent=1 if args.command == "summarize" else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
