"""Restoring a dump: into a new database, row counts compared with the dump's record, then swapped in or dropped.

`restore` puts the checked database in the live one's place in one transaction;
`drill` restores into a scratch database, compares, and drops it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from depotix_backup.database import docker_exec, first_error, psql, quote_ident, quote_literal, table_counts
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


def count_differences(recorded: dict[str, int], restored: dict[str, int]) -> dict[str, dict[str, int | None]]:
    """Return the tables whose restored row count differs from the count recorded at dump time."""
    return {table: {"recorded": recorded.get(table), "restored": restored.get(table)}
            for table in sorted(set(recorded) | set(restored)) if recorded.get(table) != restored.get(table)}


def restore_and_compare(config: dict[str, Any], verified: dict[str, Any], database: str, jobs: int,
                        require_record: bool, watch: Stopwatch, also_drop: tuple[str, ...] = ()) -> dict[str, int]:
    """Restore a verified dump into `database` and return its row counts; fail if they differ from the record.

    A dump without a record (its .json) is restored unchecked, unless `require_record`.
    """
    if verified.get("tables") is None and require_record:
        raise BackupError(f"{verified['file']}.json (the row counts at dump time) is missing: "
                          "the restored data cannot be compared; pick another dump.")
    restore_into(config, Path(verified["path"]), database, jobs, also_drop)
    watch.lap("load")
    restored = table_counts(config, database)
    watch.lap("count")
    if verified.get("tables") is None:
        return restored
    differences = count_differences(verified["tables"], restored)
    if differences:
        raise BackupError(f"{verified['file']} restored into {database} with row counts that differ from those "
                          f"recorded at dump time: {json.dumps(differences)}")
    return restored


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


def cmd_restore(config: dict[str, Any], name: str, jobs: int, keep_previous: bool) -> dict[str, Any]:
    """Restore a verified dump over the live database.

    The dump goes into a new database first and its row counts are checked; only then
    is it swapped in, in one transaction, the live database becoming <database>_replaced.
    That one is dropped at the end, or with --keep-previous kept until
    `discard-previous` (restore.yml drops it once the API is healthy). A run killed
    halfway leaves the live database as it was, and running again starts over.
    """
    started, watch = time.monotonic(), Stopwatch()
    verified = cmd_verify(config, resolve_dump(config, name))
    watch.lap("verify")
    database = config["database"]
    staging, previous = f"{database}_restoring", previous_database(config)
    restored = restore_and_compare(config, verified, staging, jobs, require_record=False, watch=watch,
                                   also_drop=(previous,))
    psql(config, swap_sql(database, staging, previous))
    watch.lap("swap")
    if not keep_previous:
        cmd_discard_previous(config)
        watch.lap("drop_previous")
    return {"changed": True, "path": verified["path"], "file": verified["file"], "sha256": verified["sha256"],
            "database": database, "label": verified["label"], "created": verified["created"],
            "tables": restored, "rows": sum(restored.values()), "jobs": jobs,
            "compared": verified.get("tables") is not None, "phases": watch.phases,
            "previous_database": previous if keep_previous else None,
            "seconds": round(time.monotonic() - started, 2)}


def cmd_drill(config: dict[str, Any], name: str, jobs: int) -> dict[str, Any]:
    """Restore a dump into a scratch database, compare row counts with the dump's record, drop it."""
    started, watch = time.monotonic(), Stopwatch()
    verified = cmd_verify(config, resolve_dump(config, name))
    watch.lap("verify")
    scratch = f"{config['database']}_drill"
    try:
        restored = restore_and_compare(config, verified, scratch, jobs, require_record=True, watch=watch)
    finally:
        psql(config, f"DROP DATABASE IF EXISTS {quote_ident(scratch)} WITH (FORCE);")
        watch.lap("drop")
    return {"changed": False, "ok": True, "path": verified["path"], "file": verified["file"],
            "created": verified["created"], "tables": len(restored), "rows": sum(restored.values()),
            "counts": restored, "scratch_database": scratch, "phases": watch.phases,
            "seconds": round(time.monotonic() - started, 2)}
