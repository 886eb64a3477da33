"""Restoring a dump: into a new database, compared with the dump's record, then swapped in or dropped.

`restore` compares row counts and puts the checked database in the live one's place in
one transaction; `drill` (and `verify --restore`) restores into a scratch database,
compares every table's row count and content checksum, and drops it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from depotix_backup.database import docker_exec, first_error, psql, quote_ident, quote_literal, table_snapshot
from depotix_backup.errors import BackupError
from depotix_backup.names import resolve_dump
from depotix_backup.verify import cmd_verify

# Inside the container: a parallel pg_restore needs a file it can seek in, so the dump is
# streamed into one first; copies left by a killed run go (one run at a time: the lock).
RESTORE_IN_CONTAINER = (
    'rm -f /tmp/depotix-restore-*.dump && cat > "$1" && '
    'pg_restore --exit-on-error --jobs="$2" -U "$3" -d "$4" "$1"; status=$?; rm -f "$1"; exit $status'
)


class Stopwatch:
    """Seconds spent in each phase of a command, for its result."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.last = time.monotonic()

    def lap(self, phase: str) -> None:
        """Record the seconds since the previous lap as `phase`."""
        now = time.monotonic()
        self.phases[phase] = round(now - self.last, 2)
        self.last = now


def create_database_sql(database: str, owner: str, like: str, also_drop: tuple[str, ...] = ()) -> str:
    """SQL (for psql) that drops `database` (and `also_drop`), then creates it empty with `like`'s encoding."""
    drops = "".join(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE);\n" for name in (database, *also_drop))
    return (drops +
            f"SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0 ENCODING %L LC_COLLATE %L LC_CTYPE %L', "
            f"{quote_literal(database)}, {quote_literal(owner)}, pg_encoding_to_char(encoding), datcollate, datctype) "
            f"FROM pg_database WHERE datname = {quote_literal(like)}\n"
            f"UNION ALL SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0', {quote_literal(database)}, "
            f"{quote_literal(owner)}) WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {quote_literal(like)})"
            " \\gexec\n")


def pg_options(config: dict[str, Any]) -> dict[str, str]:
    """Return the environment that gives pg_restore's sessions the restore settings (PGOPTIONS)."""
    settings = config.get("restore_settings") or {}
    if not settings:
        return {}
    return {"PGOPTIONS": " ".join(f"-c {key}={value}" for key, value in sorted(settings.items()))}


def restore_into(config: dict[str, Any], path: Path, database: str, jobs: int,
                 also_drop: tuple[str, ...] = ()) -> None:
    """Restore a dump into a new database of that name (dropped first if it exists, with `also_drop`)."""
    owner = config.get("owner") or config["user"]
    psql(config, create_database_sql(database, owner, config["database"], also_drop))
    inside = f"/tmp/depotix-restore-{os.getpid()}.dump"
    with path.open("rb") as fh:
        restored = docker_exec(config, ["sh", "-c", RESTORE_IN_CONTAINER, "depotix-restore", inside,
                                        str(max(1, jobs)), config["user"], database],
                               env=pg_options(config), stdin=fh, capture_output=True)
    if restored.returncode != 0:
        reason = first_error(restored.stderr.decode(errors="replace"))
        raise BackupError(f"pg_restore into {database} failed: {reason}")


def differences(recorded: dict[str, Any], restored: dict[str, Any], checksums: bool) -> dict[str, dict[str, Any]]:
    """Return the tables whose restored row count (or content checksum) differs from the record's."""
    found: dict[str, dict[str, Any]] = {}
    for table in sorted(set(recorded["tables"]) | set(restored["tables"])):
        rows = (recorded["tables"].get(table), restored["tables"].get(table))
        sums = (recorded["checksums"].get(table), restored["checksums"].get(table)) if checksums else (None, None)
        if rows[0] != rows[1] or sums[0] != sums[1]:
            found[table] = {"recorded": rows[0], "restored": rows[1], "content": "same" if sums[0] == sums[1]
                            else "differs"}
    return found


def restore_and_compare(config: dict[str, Any], verified: dict[str, Any], database: str, jobs: int,
                        watch: Stopwatch, checksums: bool, also_drop: tuple[str, ...] = ()) -> dict[str, int]:
    """Restore a verified dump into `database`; fail, naming the tables, if it differs from the record.

    Compared are the row counts, and with `checksums` the content checksums the record
    has; a dump verified without a record (--allow-unrecorded) is restored unchecked.
    """
    restore_into(config, Path(verified["path"]), database, jobs, also_drop)
    watch.lap("load")
    checksums = checksums and verified.get("checksums") is not None
    restored = table_snapshot(config, database, checksums)
    watch.lap("compare" if checksums else "count")
    if verified.get("tables") is None:
        return restored["tables"]
    recorded = {"tables": verified["tables"], "checksums": verified.get("checksums") or {}}
    found = differences(recorded, restored, checksums)
    if found:
        summary = "; ".join(f"{table} (rows: {d['recorded']} recorded, {d['restored']} restored; content "
                            f"{d['content']})" for table, d in found.items())
        raise BackupError(f"{verified['file']} restored into {database} with tables that differ from those recorded "
                          f"at dump time: {summary}")
    return restored["tables"]


def previous_database(config: dict[str, Any]) -> str:
    """Return the name the live database gets when a restore swaps it out."""
    return f"{config['database']}_replaced"


def swap_sql(database: str, staging: str, previous: str) -> str:
    """SQL (for psql) that puts `staging` in the place of `database`, which becomes `previous`, in one transaction.

    Sessions on the live database are ended first, since a database cannot be renamed
    while anyone is connected to it; should one connect again in between, the swap fails
    as a whole and the live database stays as it was.
    """
    live = quote_literal(database)
    return (f"SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = {live} "
            "AND pid <> pg_backend_pid();\n"
            "BEGIN;\n"
            f"SELECT format('ALTER DATABASE %I RENAME TO %I', datname, {quote_literal(previous)}) FROM pg_database "
            f"WHERE datname = {live} \\gexec\n"
            f"ALTER DATABASE {quote_ident(staging)} RENAME TO {quote_ident(database)};\n"
            "COMMIT;\n")


def cmd_discard_previous(config: dict[str, Any]) -> dict[str, Any]:
    """Drop the database a restore swapped out (kept until the application is healthy on the new one)."""
    previous = previous_database(config)
    existed = psql(config, f"SELECT count(*) FROM pg_database WHERE datname = {quote_literal(previous)};").strip()
    psql(config, f"DROP DATABASE IF EXISTS {quote_ident(previous)} WITH (FORCE);")
    return {"changed": existed != "0", "dropped": previous if existed != "0" else None}


def cmd_restore(config: dict[str, Any], name: str, jobs: int, keep_previous: bool,
                allow_unrecorded: bool = False) -> dict[str, Any]:
    """Restore a verified dump over the live database.

    The dump goes into a new database first and its row counts are checked; only then
    is it swapped in, in one transaction, the live database becoming <database>_replaced.
    That one is dropped at the end, or with --keep-previous kept until
    `discard-previous` (restore.yml drops it once the API is healthy). A run killed
    halfway leaves the live database as it was, and running again starts over. A dump
    whose record is missing or torn is refused unless `allow_unrecorded`.
    """
    started, watch = time.monotonic(), Stopwatch()
    verified = cmd_verify(config, resolve_dump(config, name), allow_unrecorded)
    watch.lap("verify")
    database = config["database"]
    staging, previous = f"{database}_restoring", previous_database(config)
    restored = restore_and_compare(config, verified, staging, jobs, watch, checksums=False, also_drop=(previous,))
    psql(config, swap_sql(database, staging, previous))
    watch.lap("swap")
    if not keep_previous:
        cmd_discard_previous(config)
        watch.lap("drop_previous")
    return {"changed": True, "path": verified["path"], "file": verified["file"], "sha256": verified["sha256"],
            "database": database, "label": verified["label"], "created": verified["created"],
            "tables": restored, "rows": sum(restored.values()), "jobs": jobs,
            "compared": verified.get("tables") is not None, "phases": watch.phases,
            "unchecked": [] if verified.get("tables") is not None else ["row counts"],
            "record_problem": verified["record_problem"],
            "previous_database": previous if keep_previous else None,
            "seconds": round(time.monotonic() - started, 2)}


def restore_check(config: dict[str, Any], verified: dict[str, Any], jobs: int, watch: Stopwatch) -> dict[str, Any]:
    """Restore a verified dump into the scratch database, compare it with the record, drop it; return the outcome."""
    scratch = f"{config['database']}_drill"
    try:
        restored = restore_and_compare(config, verified, scratch, jobs, watch, checksums=True)
    finally:
        psql(config, f"DROP DATABASE IF EXISTS {quote_ident(scratch)} WITH (FORCE);")
        watch.lap("drop")
    compared = [what for what in ("row counts", "content checksums") if what not in verified["unchecked"]]
    outcome = (f"passed: {verified['file']} restored into a scratch database, {len(restored)} tables and "
               f"{sum(restored.values())} rows, " +
               (f"every table's {' and '.join(compared)} equal to its record" if compared else "nothing compared") +
               (f" ({', '.join(verified['unchecked'])} not recorded, unchecked)" if verified["unchecked"] else ""))
    return {"ok": True, "tables": len(restored), "rows": sum(restored.values()), "counts": restored,
            "scratch_database": scratch, "compared": compared, "unchecked": verified["unchecked"],
            "outcome": outcome}


def cmd_drill(config: dict[str, Any], name: str, jobs: int) -> dict[str, Any]:
    """Restore a dump into a scratch database, compare row counts and content checksums with its record, drop it."""
    started, watch = time.monotonic(), Stopwatch()
    verified = cmd_verify(config, resolve_dump(config, name))
    watch.lap("verify")
    checked = restore_check(config, verified, jobs, watch)
    return {"changed": False, "path": verified["path"], "file": verified["file"], "created": verified["created"],
            **checked, "phases": watch.phases, "seconds": round(time.monotonic() - started, 2)}


def cmd_verify_restore(config: dict[str, Any], name: str, jobs: int, allow_unrecorded: bool) -> dict[str, Any]:
    """`verify --restore`: verify a dump, then restore it into a scratch database and compare it with its record."""
    started, watch = time.monotonic(), Stopwatch()
    verified = cmd_verify(config, resolve_dump(config, name), allow_unrecorded)
    watch.lap("verify")
    checked = restore_check(config, verified, jobs, watch)
    return {**verified, "restored": {**checked, "phases": watch.phases,
                                     "seconds": round(time.monotonic() - started, 2)}}
