"""Point-in-time recovery with pgBackRest, run inside the database container as postgres.

The repository (base backups and the archived WAL) is pgBackRest's; this module runs its
backups, expire and verify, reads what the repository covers, creates named restore
points (recorded in the restore points file), plans a recovery (which backup set, which
WAL) and restores one into a new Docker volume for restore.yml to start and verify.
Point-in-time recovery is off when the settings name no stanza (pitr_stanza).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from depotix_backup import clock
from depotix_backup.database import docker_exec, docker_timeout, first_error, last_line, psql, quote_literal
from depotix_backup.errors import BackupError, Unreachable
from depotix_backup.files import fsync_path

BACKUP_TYPES = ("full", "diff", "incr")
# A restore point's name: letters, digits and . _ - : (PostgreSQL allows up to 63 bytes).
POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$")
DOCKER_VOLUME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,127}$")
# Where the container sees the repository and pgBackRest's settings (the postgres role mounts them there).
CONTAINER_REPO = "/var/lib/pgbackrest"
CONTAINER_CONFIG = "/etc/pgbackrest/pgbackrest.conf"
DATA_DIR = "/var/lib/postgresql/data"
# The one-off container that runs `pgbackrest restore` (one at a time: the directory's lock).
RESTORE_CONTAINER = "depotix-pitr-restore"


def stanza(config: dict[str, Any]) -> str:
    """Return the stanza; refuse when point-in-time recovery is off on this host."""
    name = config.get("pitr_stanza") or ""
    if not name:
        raise BackupError("point-in-time recovery is off on this host (postgres_pitr_enabled is false): "
                          "there is no pgBackRest repository to use.")
    return name


def pgbackrest(config: dict[str, Any], args: list[str], timeout: float | None = None) -> str:
    """Run pgbackrest in the database container as postgres; return its output, or raise with its error."""
    done = docker_exec(config, ["pgbackrest", f"--stanza={stanza(config)}", *args], user="postgres",
                       capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        message = first_error(done.stdout + "\n" + done.stderr)
        if "No such container" in done.stderr or "is not running" in done.stderr:
            raise Unreachable(f"the database container {config['container']} is not running: {last_line(done.stderr)}")
        raise BackupError(f"pgbackrest {args[-1]} failed (exit {done.returncode}): {message}")
    return done.stdout


def epoch_iso(seconds: float | None) -> str | None:
    """Return a Unix time as an ISO 8601 UTC string (None stays None)."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(float(seconds), dt.timezone.utc).isoformat()


def parse_info(text: str) -> dict[str, Any]:
    """Return the stanza's backups and WAL range from `pgbackrest info --output=json`, oldest backup first."""
    try:
        stanzas = json.loads(text)
    except ValueError as exc:
        raise BackupError(f"pgbackrest info printed no JSON ({exc})") from exc
    if not stanzas:
        raise BackupError("pgbackrest info knows no stanza: create it (site.yml, postgres role)")
    if not isinstance(stanzas, list) or not isinstance(stanzas[0], dict):
        raise BackupError("pgbackrest info printed JSON of another shape than a list of stanzas")
    try:
        return stanza_info(stanzas[0])
    except (KeyError, TypeError, AttributeError) as exc:
        raise BackupError(f"pgbackrest info printed a stanza without {exc}: is this pgBackRest 2.x?") from exc


def stanza_info(info: dict[str, Any]) -> dict[str, Any]:
    """Return one stanza of `pgbackrest info --output=json` in parse_info's form."""
    status = info.get("status") or {}
    backups = [{
        "label": b["label"], "type": b["type"], "prior": b.get("prior"),
        "start": epoch_iso(b["timestamp"]["start"]), "stop": epoch_iso(b["timestamp"]["stop"]),
        "stop_epoch": b["timestamp"]["stop"],
        "wal_start": (b.get("archive") or {}).get("start"), "wal_stop": (b.get("archive") or {}).get("stop"),
        "size": (b.get("info") or {}).get("size"),
        "repository_size": ((b.get("info") or {}).get("repository") or {}).get("size"),
    } for b in info.get("backup") or [] if not b.get("error")]
    backups.sort(key=lambda b: b["stop_epoch"])
    archives = info.get("archive") or []
    wal = {"min": min((a["min"] for a in archives if a.get("min")), default=None),
           "max": max((a["max"] for a in archives if a.get("max")), default=None)}
    return {"stanza": info.get("name"), "status": status.get("message", "?"), "status_code": status.get("code"),
            "backups": backups, "wal": wal}


def one_off(config: dict[str, Any], image: str, pgbackrest_args: list[str], *mounts: str) -> list[str]:
    """Return the command of a one-off container of the database image running pgbackrest, without a network.

    It sees the repository and pgbackrest.conf where the database container does (and `mounts`).
    """
    return [config["docker"], "run", "--rm", "--user", "postgres", "--network", "none",
            "--mount", f"type=bind,source={config['pitr_repo_dir']},target={CONTAINER_REPO}",
            "--mount", f"type=bind,source={config['pitr_config_file']},target={CONTAINER_CONFIG},readonly",
            *[arg for mount in mounts for arg in ("--mount", mount)],
            "--entrypoint", "pgbackrest", image, f"--stanza={stanza(config)}", *pgbackrest_args]


def repository_info(config: dict[str, Any]) -> dict[str, Any]:
    """Return what the repository holds (parse_info); through a one-off container when the database is down."""
    try:
        return parse_info(pgbackrest(config, ["--output=json", "info"], timeout=docker_timeout(config)))
    except Unreachable:
        if not config.get("pitr_image"):
            raise
    try:
        done = subprocess.run(one_off(config, config["pitr_image"], ["--output=json", "info"]), capture_output=True,
                              text=True, check=False, timeout=docker_timeout(config))
    except subprocess.TimeoutExpired as exc:
        raise Unreachable("docker run (pgbackrest info) did not answer: check the Docker daemon") from exc
    if done.returncode != 0:
        raise BackupError(f"pgbackrest info failed (exit {done.returncode}): "
                          f"{first_error(done.stdout + chr(10) + done.stderr)}")
    return parse_info(done.stdout)


def archiver_state(config: dict[str, Any]) -> dict[str, Any]:
    """Return PostgreSQL's archiver statistics: the newest archived WAL, its age, and whether pushes are failing."""
    row = psql(config, "SELECT coalesce(last_archived_wal, ''), coalesce(extract(epoch FROM last_archived_time), 0), "
                       "coalesce(last_failed_wal, ''), coalesce(extract(epoch FROM last_failed_time), 0), "
                       "failed_count, extract(epoch FROM now()) FROM pg_stat_archiver",
               timeout=docker_timeout(config)).strip()
    archived_wal, archived_at, failed_wal, failed_at, failed_count, now = row.split("|")
    archived, failed, now_epoch = float(archived_at), float(failed_at), float(now)
    return {"last_archived_wal": archived_wal or None, "last_archived_time": epoch_iso(archived) if archived else None,
            "archived_age_seconds": round(now_epoch - archived, 1) if archived else None,
            "last_failed_wal": failed_wal or None, "last_failed_time": epoch_iso(failed) if failed else None,
            "failed_count": int(failed_count), "failing": failed > archived}


def cmd_pitr_backup(config: dict[str, Any], kind: str) -> dict[str, Any]:
    """Take a full, differential or incremental backup (pgBackRest expires by its retention after it)."""
    if kind not in BACKUP_TYPES:
        raise BackupError(f"backup type {kind!r} is not one of {', '.join(BACKUP_TYPES)}")
    started = time.monotonic()
    pgbackrest(config, [f"--type={kind}", "backup"])
    info = repository_info(config)
    newest = info["backups"][-1] if info["backups"] else None
    return {"changed": True, "type": kind, "backup": newest, "seconds": round(time.monotonic() - started, 2),
            "backups": len(info["backups"]), "archiver": archiver_state(config)}


def cmd_pitr_expire(config: dict[str, Any]) -> dict[str, Any]:
    """Expire backups and WAL beyond the retention in pgbackrest.conf."""
    before = repository_info(config)["backups"]
    pgbackrest(config, ["expire"])
    after = repository_info(config)["backups"]
    kept = {b["label"] for b in after}
    return {"changed": len(after) != len(before), "expired": [b["label"] for b in before if b["label"] not in kept],
            "kept": sorted(kept)}


def cmd_pitr_verify(config: dict[str, Any]) -> dict[str, Any]:
    """Verify the repository: every backup file and WAL segment against its checksum, and no gap in the WAL."""
    started = time.monotonic()
    output = pgbackrest(config, ["--log-level-console=info", "verify"])
    problems = [line.strip() for line in output.splitlines() if re.search(r"(WARN|ERROR):", line)]
    if problems:
        raise BackupError("pgbackrest verify found problems: " + "; ".join(problems[:5]))
    return {"changed": False, "verified": True, "seconds": round(time.monotonic() - started, 2),
            "archiver": archiver_state(config)}


def cmd_pitr_check(config: dict[str, Any]) -> dict[str, Any]:
    """Check that a WAL switch reaches the repository (pgbackrest check), then report the archiver's state."""
    wait = int(config.get("pitr_check_timeout", 60))
    pgbackrest(config, [f"--archive-timeout={wait}", "check"], timeout=wait + docker_timeout(config))
    return {"changed": False, "checked": True, "archiver": archiver_state(config)}


def read_points(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the recorded restore points, oldest first ([] when there is no file)."""
    path = Path(config["restore_points"])
    try:
        points = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise BackupError(f"{path} is not valid JSON ({exc}): move it aside; restore points are also in the "
                          "PostgreSQL log") from exc
    if not isinstance(points, list):
        raise BackupError(f"{path} does not hold a list of restore points: move it aside")
    return points


def write_points(config: dict[str, Any], points: list[dict[str, Any]]) -> None:
    """Replace the restore points file atomically."""
    path = Path(config["restore_points"])
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(json.dumps(points, indent=1, sort_keys=True) + "\n")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    fsync_path(path.parent)


def cmd_restore_point(config: dict[str, Any], name: str, action: str, release: str | None) -> dict[str, Any]:
    """Create a named PostgreSQL restore point and record it (name, time, LSN, action, release)."""
    if not POINT_NAME.fullmatch(name):
        raise BackupError(f"restore point name {name!r}: use 1 to 63 letters, digits and . _ - : "
                          "(starting with a letter or digit)")
    if any(point["name"] == name for point in read_points(config)):
        raise BackupError(f"a restore point named {name} is recorded already: a recovery to it would be ambiguous")
    row = psql(config, f"SELECT pg_create_restore_point({quote_literal(name)}), "
                       "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
               timeout=docker_timeout(config)).strip()
    lsn, created = row.split("|")
    point = {"name": name, "time": created, "lsn": lsn, "action": action, "release": release}
    write_points(config, [*read_points(config), point])
    return {"changed": True, "point": point}


def parse_target_time(text: str) -> dt.datetime:
    """Return a target time with its offset ("2026-11-30 10:14:59+00"); refuse one without an offset."""
    value = text.strip().replace(" ", "T", 1)
    if re.search(r"[+-]\d\d$", value):
        value += ":00"
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BackupError(f"target_time {text!r} is not a time such as '2026-11-30 10:14:59+00'") from exc
    if moment.tzinfo is None:
        raise BackupError(f"target_time {text!r} has no UTC offset: write it as '2026-11-30 10:14:59+00'")
    return moment.astimezone(dt.timezone.utc)


def coverage(info: dict[str, Any], archiver: dict[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
    """Return the times a recovery can reach: from the end of the oldest backup to the newest archived WAL (or now)."""
    if not info["backups"]:
        raise BackupError("the repository holds no backup yet: take one (backup.yml -e pitr=full) first")
    newest = now.isoformat()
    if archiver and archiver.get("failing"):
        newest = archiver.get("last_archived_time") or newest
    return {"from": info["backups"][0]["stop"], "to": newest}


def choose_set(info: dict[str, Any], moment: dt.datetime | None) -> dict[str, Any]:
    """Return the newest backup that ended before `moment` (the newest of all when None)."""
    usable = [b for b in info["backups"] if moment is None or b["stop_epoch"] < moment.timestamp()]
    if not usable:
        raise BackupError("no backup ended before that moment")
    return usable[-1]


def cmd_pitr_plan(config: dict[str, Any], target_time: str | None, target_name: str | None) -> dict[str, Any]:
    """Say which backup set and WAL a recovery to the target uses; refuse a target outside what is covered.

    One target at most: a time, a recorded restore point's name, or neither (the newest archived WAL).
    """
    info, archiver, now = repository_info(config), archiver_state_or_none(config), clock.utc_now()
    covered = coverage(info, archiver, now)
    if target_time:
        moment = parse_target_time(target_time)
        target = {"type": "time", "value": moment.isoformat(sep=" "), "time": moment.isoformat()}
    elif target_name:
        point = next((p for p in read_points(config) if p["name"] == target_name), None)
        if point is None:
            known = ", ".join(p["name"] for p in read_points(config)[-5:]) or "none"
            raise BackupError(f"no restore point named {target_name} is recorded (the newest: {known})")
        moment = parse_target_time(point["time"])
        target = {"type": "name", "value": target_name, "time": moment.isoformat(), "point": point}
    else:
        moment = None
        target = {"type": "latest", "value": None, "time": covered["to"]}
    if moment is not None and not covered["from"] < moment.isoformat() <= covered["to"]:
        raise BackupError(f"{target['type']} target {target['value']} ({moment.isoformat()}) is outside what the "
                          f"repository covers: from {covered['from']} (the end of the oldest backup) to "
                          f"{covered['to']}")
    chosen = choose_set(info, moment)
    return {"changed": False, "target": target, "covered": covered, "set": chosen["label"], "backup": chosen,
            "timeline": live_timeline(config) if archiver else None,
            "wal": {"from": chosen["wal_start"], "to": (archiver or {}).get("last_archived_wal") or info["wal"]["max"]},
            "archiver": archiver}


def live_timeline(config: dict[str, Any]) -> int | None:
    """Return the live database's timeline, or None when it does not answer (then recovery follows the newest).

    A recovery follows the history of this timeline, never a newer one that a recovery
    undone afterwards left in the repository (its history file stays there).
    """
    try:
        text = psql(config, "SELECT timeline_id FROM pg_control_checkpoint()", timeout=docker_timeout(config))
        return int(text.strip())
    except (BackupError, KeyError, OSError, ValueError):
        return None


def archiver_state_or_none(config: dict[str, Any]) -> dict[str, Any] | None:
    """Return the archiver's state, or None when the database does not answer (a restore after a crash)."""
    try:
        return archiver_state(config)
    except BackupError:
        return None


def restore_plan(backup_set: str, target_time: str | None, target_name: str | None,
                 timeline: int | None = None) -> dict[str, Any]:
    """Return the part of a plan that a restore needs (its set and target), from pitr-plan's answers.

    Nothing is read from the database: it is stopped by then.
    """
    if not re.fullmatch(r"\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?", backup_set):
        raise BackupError(f"backup set {backup_set!r} is not a pgBackRest backup label")
    if target_time:
        target = {"type": "time", "value": parse_target_time(target_time).isoformat(sep=" ")}
    elif target_name:
        if not POINT_NAME.fullmatch(target_name):
            raise BackupError(f"restore point name {target_name!r} is not one this script records")
        target = {"type": "name", "value": target_name}
    else:
        target = {"type": "latest", "value": None}
    if timeline is not None and timeline < 1:
        raise BackupError(f"timeline {timeline} is not a PostgreSQL timeline")
    return {"set": backup_set, "target": target, "timeline": timeline}


def restore_argv(config: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """Return pgbackrest's restore arguments for a plan: its set, its target, promote at the target."""
    processes = int(config.get("pitr_processes", 2))
    args = [f"--stanza={stanza(config)}", f"--set={plan['set']}", f"--process-max={processes}"]
    target = plan["target"]
    if target["type"] in ("time", "name"):
        args += [f"--type={target['type']}", f"--target={target['value']}", "--target-action=promote"]
    if plan.get("timeline"):
        args.append(f"--target-timeline={int(plan['timeline'])}")
    return [*args, "restore"]


def cmd_pitr_restore(config: dict[str, Any], plan: dict[str, Any], volume: str, image: str) -> dict[str, Any]:
    """Restore the plan's backup set into a new Docker volume (recovery settings written, not started).

    The restore runs in a one-off container of the database image (RESTORE_CONTAINER) with
    the volume, the repository and pgbackrest.conf mounted, without a network.
    """
    if not DOCKER_VOLUME.fullmatch(volume):
        raise BackupError(f"volume name {volume!r} is not a Docker volume name")
    docker = config["docker"]
    started = time.monotonic()
    run = one_off(config, image, ["--delta", *restore_argv(config, plan)[1:]],
                  f"type=volume,source={volume},target={DATA_DIR}")
    run[2:2] = ["--name", RESTORE_CONTAINER]
    try:
        # One left by a killed run goes first (its volume is emptied by --delta below).
        subprocess.run([docker, "rm", "--force", RESTORE_CONTAINER], check=False, capture_output=True,
                       timeout=docker_timeout(config))
        subprocess.run([docker, "volume", "create", volume], check=True, capture_output=True, text=True,
                       timeout=docker_timeout(config))
        done = subprocess.run(run, capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired as exc:
        raise Unreachable("docker volume create did not answer: check the Docker daemon") from exc
    except subprocess.CalledProcessError as exc:
        raise BackupError(f"docker volume create {volume} failed: {last_line(exc.stderr)}") from exc
    if done.returncode != 0:
        raise BackupError(f"pgbackrest restore into {volume} failed (exit {done.returncode}): "
                          f"{first_error(done.stdout + chr(10) + done.stderr)}")
    return {"changed": True, "volume": volume, "set": plan["set"], "target": plan["target"],
            "seconds": round(time.monotonic() - started, 2)}


# The scratch cluster of a drill: a container of its own, without a network, that never archives.
DRILL_CONTAINER = "depotix-pitr-drill"
DRILL_VOLUME = "depotix-pitr-drill"


def live_counts_at_point(config: dict[str, Any], name: str) -> tuple[dict[str, int], dict[str, Any]]:
    """Create restore point `name` and count every table's rows at exactly that point.

    Writers wait (SHARE locks, taken before the snapshot) while the point is created and the
    rows are counted, so that the counts are those of the point: a fraction of a second.
    """
    tables = [line for line in psql(config, "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                                            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
                                            "ORDER BY 1", config["database"]).splitlines() if line]
    counts = " UNION ALL ".join(f"SELECT {quote_literal(t)}, count(*) FROM {t}" for t in tables) or "SELECT '', 0"
    output = psql(config, "BEGIN ISOLATION LEVEL REPEATABLE READ;\n"
                          + (f"LOCK TABLE {', '.join(tables)} IN SHARE MODE;\n" if tables else "")
                          + f"SELECT 'point', pg_create_restore_point({quote_literal(name)}), now();\n"
                          + counts + ";\nCOMMIT;\n", config["database"], timeout=docker_timeout(config))
    rows: dict[str, int] = {}
    point: dict[str, Any] = {"name": name}
    for line in output.splitlines():
        first, _, rest = line.partition("|")
        if first == "point":
            point["lsn"], point["time"] = rest.split("|")
        elif first:
            rows[first] = int(rest)
    return rows, point


def drill_counts(config: dict[str, Any]) -> dict[str, int]:
    """Count every table's rows in the drill's scratch cluster."""
    sql = ("SELECT format('SELECT %L, count(*) FROM %I.%I;', format('%I.%I', schemaname, tablename), schemaname, "
           "tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
           "ORDER BY 1 \\gexec\n")
    done = subprocess.run([config["docker"], "exec", "-i", DRILL_CONTAINER, "psql", "-X", "-q", "-A", "-t", "-v",
                           "ON_ERROR_STOP=1", "-U", config["user"], "-d", config["database"]],
                          input=sql, capture_output=True, text=True, check=False, timeout=docker_timeout(config))
    if done.returncode != 0:
        raise BackupError(f"counting the rows of the drill's cluster failed: {first_error(done.stderr)}")
    return {name: int(count) for name, _, count in (line.partition("|") for line in done.stdout.splitlines()) if name}


def wait_promoted(config: dict[str, Any], timeout: float) -> None:
    """Wait until the drill's cluster has replayed to its target and promoted; fail saying what it logged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run([config["docker"], "exec", DRILL_CONTAINER, "psql", "-X", "-A", "-t", "-U",
                               config["user"], "-d", "postgres", "-c", "SELECT pg_is_in_recovery()"],
                              capture_output=True, text=True, check=False, timeout=docker_timeout(config))
        if done.stdout.strip() == "f":
            return
        state = subprocess.run([config["docker"], "inspect", "--format", "{{.State.Running}}", DRILL_CONTAINER],
                               capture_output=True, text=True, check=False).stdout.strip()
        if state == "false":
            break
        time.sleep(1)
    logs = subprocess.run([config["docker"], "logs", "--tail", "5", DRILL_CONTAINER], capture_output=True,
                          text=True, check=False)
    raise BackupError("the drill's cluster did not reach its restore point and promote: "
                      + " / ".join(line.strip() for line in (logs.stdout + logs.stderr).splitlines()[-3:]))


def remove_drill(config: dict[str, Any]) -> None:
    """Remove the drill's container and volume (also those a killed drill left)."""
    subprocess.run([config["docker"], "rm", "--force", "--volumes", DRILL_CONTAINER], capture_output=True,
                   check=False, timeout=docker_timeout(config))
    subprocess.run([config["docker"], "volume", "rm", "--force", DRILL_VOLUME], capture_output=True, check=False,
                   timeout=docker_timeout(config))


def cmd_pitr_drill(config: dict[str, Any]) -> dict[str, Any]:
    """Restore the newest backup set with its WAL into a scratch cluster and compare it with the live database.

    A restore point is created on the live database with its row counts at that point
    (live_counts_at_point); the WAL up to it is archived (pgbackrest check); the scratch
    cluster (no network, archiving off: it never writes to the repository) replays to the
    point and promotes; every table's row count must equal the live one. The scratch
    cluster goes whatever happens.
    """
    started = time.monotonic()
    image = config.get("pitr_image") or ""
    if not image:
        raise BackupError("the settings name no database image (pitr_image): rerun the backup role (site.yml)")
    name = "drill_" + clock.utc_now().strftime("%Y%m%dT%H%M%SZ")
    live, point = live_counts_at_point(config, name)
    timeline = live_timeline(config)
    cmd_pitr_check(config)
    info = repository_info(config)
    chosen = choose_set(info, None)
    remove_drill(config)
    try:
        follow = [f"--target-timeline={timeline}"] if timeline else []
        restore = one_off(config, image, ["--delta", f"--set={chosen['label']}", "--type=name", f"--target={name}",
                                          "--target-action=promote", *follow, "restore"],
                          f"type=volume,source={DRILL_VOLUME},target={DATA_DIR}")
        done = subprocess.run(restore, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BackupError(f"pgbackrest restore of {chosen['label']} for the drill failed: "
                              f"{first_error(done.stdout + chr(10) + done.stderr)}")
        run = [config["docker"], "run", "--detach", "--name", DRILL_CONTAINER, "--network", "none", "--init",
               "--mount", f"type=volume,source={DRILL_VOLUME},target={DATA_DIR}",
               "--mount", f"type=bind,source={config['pitr_repo_dir']},target={CONTAINER_REPO},readonly",
               "--mount", f"type=bind,source={config['pitr_config_file']},target={CONTAINER_CONFIG},readonly",
               image, "postgres", "-c", "archive_mode=off"]
        subprocess.run(run, capture_output=True, text=True, check=True, timeout=docker_timeout(config))
        wait_promoted(config, float(config.get("pitr_drill_timeout", 1800)))
        scratch = drill_counts(config)
    finally:
        remove_drill(config)
    differ = {t: {"live": live.get(t), "recovered": scratch.get(t)} for t in sorted(set(live) | set(scratch))
              if live.get(t) != scratch.get(t)}
    if differ:
        raise BackupError(f"the drill's recovery to {name} differs from the live database at that point: "
                          + json.dumps(differ, sort_keys=True)[:600])
    return {"changed": False, "outcome": "passed", "point": point, "set": chosen["label"], "tables": len(live),
            "rows": sum(live.values()), "seconds": round(time.monotonic() - started, 2)}
