"""The status file for monitoring: node_exporter's textfile format, rewritten by every scheduled run and drill.

The file (the settings' status_file, the role's backup_status_file; empty: none) holds
the last successful scheduled run's time, dump size and duration, whether the last one
succeeded, and the same for the drill. A failed run keeps the success values of the
previous ones and sets its *_last_run_success to 0. The file is written under a
temporary name (which node_exporter ignores: it reads *.prom only), flushed and renamed,
so a scrape never reads half of it; it is 0644, for node_exporter's user. Runs update it
one at a time (a lock file beside it, .<name>.lock).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

from depotix_backup.errors import BackupError
from depotix_backup.files import fsync_path

PREFIX = "depotix_backup_"
METRICS = {
    "last_success_timestamp_seconds": "Unix time of the end of the last successful scheduled backup.",
    "last_size_bytes": "Size in bytes of the dump the last successful scheduled backup took.",
    "last_duration_seconds": "Seconds the last successful scheduled backup took (dump, offsite copy, retention).",
    "last_run_success": "1 if the last scheduled backup succeeded, 0 if it failed.",
    "drill_last_success_timestamp_seconds": "Unix time of the end of the last restore drill that passed.",
    "drill_last_run_success": "1 if the last restore drill passed, 0 if it failed.",
    "pitr_full_last_success_timestamp_seconds": "Unix time of the end of the last full pgBackRest backup.",
    "pitr_diff_last_success_timestamp_seconds": "Unix time of the end of the last differential pgBackRest backup.",
    "pitr_incr_last_success_timestamp_seconds": "Unix time of the end of the last incremental pgBackRest backup.",
    "pitr_last_run_success": "1 if the last scheduled pgBackRest backup succeeded, 0 if it failed.",
    "pitr_verify_last_success_timestamp_seconds": "Unix time of the end of the last pgBackRest verify that passed.",
    "pitr_verify_last_run_success": "1 if the last pgBackRest verify passed, 0 if it failed.",
    "pitr_drill_last_success_timestamp_seconds": "Unix time of the end of the last point-in-time drill that passed.",
    "pitr_drill_last_run_success": "1 if the last point-in-time drill passed, 0 if it failed.",
    "pitr_wal_archived_age_seconds": "Seconds since PostgreSQL last archived a WAL segment (when last asked).",
    "pitr_wal_archive_failing": "1 if WAL archiving is failing (the last push failed after the last success).",
}


def read_status(path: Path) -> dict[str, float]:
    """Return the metrics of an existing status file ({} when there is none or it cannot be read)."""
    values: dict[str, float] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, ValueError):
        return values
    for line in lines:
        name, _, value = line.partition(" ")
        if name.startswith(PREFIX) and name[len(PREFIX):] in METRICS:
            try:
                values[name[len(PREFIX):]] = float(value)
            except ValueError:
                continue
    return values


def render(values: dict[str, float]) -> str:
    """Return the status file's text: HELP, TYPE and value of every metric that has one."""
    lines = []
    for key, text in METRICS.items():
        if key in values:
            number = values[key]
            shown = str(int(number)) if float(number).is_integer() else f"{number:.3f}"
            lines += [f"# HELP {PREFIX}{key} {text}", f"# TYPE {PREFIX}{key} gauge", f"{PREFIX}{key} {shown}"]
    return "\n".join(lines) + "\n"


def write_status(path: Path, values: dict[str, float]) -> None:
    """Replace the status file atomically: a temporary file, flushed, 0644, renamed over it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with partial.open("w") as fh:
            fh.write(render(values))
            fh.flush()
            os.fchmod(fh.fileno(), 0o644)
            os.fsync(fh.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    fsync_path(path.parent)


def archiver_values(archiver: dict[str, Any] | None) -> dict[str, float]:
    """Return the WAL archiving metrics of a pgBackRest run's archiver state (none when it was not read)."""
    if not archiver:
        return {}
    values = {"pitr_wal_archive_failing": int(bool(archiver.get("failing")))}
    if archiver.get("archived_age_seconds") is not None:
        values["pitr_wal_archived_age_seconds"] = archiver["archived_age_seconds"]
    return values


def pitr_values(command: str, result: dict[str, Any] | None) -> dict[str, float]:
    """Return the metrics a pgBackRest backup, verify or check changes."""
    success = {"pitr-verify": "pitr_verify_last_run_success",
               "pitr-drill": "pitr_drill_last_run_success"}.get(command, "pitr_last_run_success")
    if result is None:
        return {success: 0} if command != "pitr-check" else {"pitr_wal_archive_failing": 1}
    values = archiver_values(result.get("archiver"))
    if command == "pitr-backup":
        values.update({success: 1, f"pitr_{result['type']}_last_success_timestamp_seconds": round(time.time())})
    elif command == "pitr-verify":
        values.update({success: 1, "pitr_verify_last_success_timestamp_seconds": round(time.time())})
    elif command == "pitr-drill":
        values.update({success: 1, "pitr_drill_last_success_timestamp_seconds": round(time.time())})
    return values


def outcome_values(command: str, result: dict[str, Any] | None, seconds: float) -> dict[str, float]:
    """Return the metrics a run changes: its success values when `result` is set, else only its failure."""
    if command.startswith("pitr-"):
        return pitr_values(command, result)
    if command == "drill":
        if result is None:
            return {"drill_last_run_success": 0}
        return {"drill_last_run_success": 1, "drill_last_success_timestamp_seconds": round(time.time())}
    if result is None:
        return {"last_run_success": 0}
    return {"last_run_success": 1, "last_success_timestamp_seconds": round(time.time()),
            "last_size_bytes": int(result["dump"]["size"]), "last_duration_seconds": round(seconds, 3)}


def record_outcome(config: dict[str, Any], command: str, result: dict[str, Any] | None, seconds: float) -> None:
    """Write a scheduled run's or drill's outcome (result None: it failed) to the status file, if one is set."""
    if not config.get("status_file"):
        return
    path = Path(config["status_file"])
    try:
        with path.with_name(f".{path.name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            write_status(path, {**read_status(path), **outcome_values(command, result, seconds)})
    except OSError as exc:
        raise BackupError(f"the status file {path} could not be written ({exc.strerror}): monitoring does not see "
                          "this run; create its directory (site.yml) and check its permissions.") from exc
