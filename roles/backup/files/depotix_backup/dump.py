"""Taking a dump: pg_dump and the record of what it holds read in one snapshot, written under a temporary name.

The dump is checksummed and checked with `pg_restore --list` before it gets its final
name; a run that fails (database down, disk full, killed) keeps no partial file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from depotix_backup.database import database_answers, first_error, parse_snapshot, psql_argv, snapshot_sql
from depotix_backup.errors import BackupError
from depotix_backup.files import free_bytes, list_archive, remove_quietly, sha256_of
from depotix_backup.ledger import ledger_release
from depotix_backup.names import dump_name, list_dumps, sidecars

# Below this many free bytes after a failed write, the directory is reported full.
FULL_MARGIN = 64 * 1024


def open_session(config: dict[str, Any]) -> subprocess.Popen:
    """Start the psql session (in the container, on the live database) that exports the dump's snapshot."""
    return subprocess.Popen(
        [config["docker"], "exec", "-i", config["container"], *psql_argv(config, config["database"])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
    )


def export_snapshot(session: subprocess.Popen) -> str:
    """Open a repeatable-read transaction in the session; return the id of the snapshot it exports."""
    assert session.stdin and session.stdout and session.stderr
    session.stdin.write("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_export_snapshot();\n")
    session.stdin.flush()
    snapshot = session.stdout.readline().strip()
    if not snapshot:
        session.kill()
        raise BackupError("could not open a snapshot of the database: " + first_error(session.stderr.read()))
    return snapshot


def pg_dump_argv(config: dict[str, Any], snapshot: str) -> list[str]:
    """Return the command that dumps the database (custom format) as it is in `snapshot`."""
    return [config["docker"], "exec", "-i", config["container"], "pg_dump", "-Fc", "-Z",
            str(config.get("compress", 6)), f"--snapshot={snapshot}", "-U", config["user"], "-d",
            config["database"]]


def dump_in_snapshot(config: dict[str, Any], session: subprocess.Popen, snapshot: str,
                     out: Path) -> tuple[str, str]:
    """Run pg_dump into `out` while the session counts rows in the same snapshot; return the session's output.

    The exporting transaction stays open until pg_dump is done: it imports the snapshot
    when it starts, whenever that is.
    """
    assert session.stdin
    with out.open("wb") as fh:
        dump = subprocess.Popen(pg_dump_argv(config, snapshot), stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.PIPE)
        try:
            try:
                session.stdin.write(snapshot_sql())
                session.stdin.flush()
            except BrokenPipeError:
                pass  # the session died: pg_dump fails too, and says why
            _, dump_err = dump.communicate()
            stdout, stderr = session.communicate("\nCOMMIT;\n", timeout=3600)
        finally:
            if dump.poll() is None:
                dump.kill()
                dump.wait()
    if dump.returncode != 0:
        raise BackupError("pg_dump failed: " + first_error(dump_err.decode(errors="replace")))
    return stdout, stderr


def run_dump(config: dict[str, Any], out: Path) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Dump the database into `out`; return what it holds (row counts, applied migrations).

    The record and the dump read the same snapshot: a repeatable-read transaction
    exports it and pg_dump uses it with --snapshot, so a drill can compare exactly. The
    counting runs in that transaction while pg_dump runs.
    """
    session = open_session(config)
    try:
        snapshot = export_snapshot(session)
        stdout, stderr = dump_in_snapshot(config, session, snapshot, out)
        if session.returncode != 0:
            raise BackupError("recording the row counts failed: " + first_error(stderr))
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    return parse_snapshot(stdout)


def unique_final_path(config: dict[str, Any], label: str) -> tuple[Path, dt.datetime]:
    """Return the path of a new dump, stamped later than every dump already there.

    Names carry the time to the second: a dump taken within the same second as the
    previous one waits for the next, so that time alone orders dumps (retention and
    `latest` rely on it) whatever their labels. Runs are serialised by the lock.
    """
    backup_dir = Path(config["directory"])
    newest = max((d.time for d in list_dumps(config)), default=None)
    while True:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        final = backup_dir / dump_name(config["prefix"], label, now)
        # A dump stamped further ahead (a clock set back) is not waited for.
        later = newest is None or now > newest or newest - now > dt.timedelta(seconds=2)
        if later and not any(p.exists() for p in (final, *sidecars(final))):
            return final, now
        time.sleep(1.05 - dt.datetime.now(dt.timezone.utc).microsecond / 1e6)


def full_disk_message(backup_dir: Path, detail: str) -> str | None:
    """Return an operator message when a write failed because the backup directory is full."""
    free = free_bytes(backup_dir)
    if "no space left" in detail.lower() or free < FULL_MARGIN:
        return (f"the backup directory {backup_dir} is full ({free} bytes free): free space or move old dumps "
                "away, then rerun; no partial dump was kept and earlier dumps are untouched.")
    return None


def write_dump(config: dict[str, Any], partial: Path, final: Path, now: dt.datetime, label: str,
               release: str | None) -> dict[str, Any]:
    """Dump into `partial`, check it, write its sidecars and give it its final name; return its record."""
    checksum_file, record_file = sidecars(final)
    try:
        counts, migrations = run_dump(config, partial)
    except BackupError as exc:
        message = full_disk_message(Path(config["directory"]), str(exc))
        raise BackupError(message or f"{exc}; no partial dump was kept and earlier dumps are untouched.") from exc
    checksum = sha256_of(partial)
    entries = list_archive(config, partial)
    meta = {"file": final.name, "sha256": checksum, "created": now.isoformat(timespec="seconds"),
            "label": label, "release": release, "database": config["database"], "tables": counts,
            "rows": sum(counts.values()), "migrations": migrations, "entries": entries,
            "size": partial.stat().st_size}
    record_file.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    checksum_file.write_text(f"{checksum}  {final.name}\n")
    os.replace(partial, final)
    return meta


def cmd_dump(config: dict[str, Any], label: str | None) -> dict[str, Any]:
    """Take one verified dump; return its path, checksum and what it holds."""
    backup_dir = Path(config["directory"])
    database_answers(config)
    release = ledger_release(config)
    label = label or release or ""
    final, now = unique_final_path(config, label)
    partial = backup_dir / f".{final.name}.partial"
    os.umask(0o077)
    try:
        meta = write_dump(config, partial, final, now, label, release)
    except OSError as exc:
        remove_quietly(partial, *sidecars(final))
        raise BackupError(full_disk_message(backup_dir, str(exc)) or
                          f"writing {final.name} failed ({exc.strerror}); no partial dump was kept.") from exc
    except BaseException:
        remove_quietly(partial, *sidecars(final))
        raise
    return {"changed": True, "path": str(final), **meta}
