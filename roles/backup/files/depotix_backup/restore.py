"""Restoring a dump: into a new database, compared with the dump's record, then swapped in or dropped.

`restore` compares row counts and puts the checked database in the live one's place in
one transaction; `drill` (and `verify --restore`) restores into a scratch database,
compares every table's row count and content checksum, and drops it.
"""

from __future__ import annotations

import os
import re
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
    """Return the name the live database gets when a restore swaps it out (unless it is named with --keep-as)."""
    return f"{config['database']}_replaced"


def kept_name_problem(config: dict[str, Any], name: str) -> str | None:
    """Return why `name` cannot be the name of a replaced database, or None when it can.

    Every replaced database is named <database>_replaced, or <database>_replaced_<suffix>
    (lower-case letters, digits, _): discard-previous drops no other database.
    """
    pattern = re.escape(previous_database(config)) + r"(_[a-z0-9_]+)?"
    if not re.fullmatch(pattern, name) or len(name.encode()) > 63:
        return (f"{name!r} as the name of a replaced database: {previous_database(config)} or "
                f"{previous_database(config)}_<suffix> (a-z, 0-9, _; at most 63 bytes)")
    return None


def database_exists(config: dict[str, Any], name: str) -> bool:
    """Return whether a database of that name exists."""
    return psql(config, f"SELECT count(*) FROM pg_database WHERE datname = {quote_literal(name)};").strip() != "0"


# Attempts at the swap when a client connects to the live database again between the end
# of its sessions and the rename (PostgreSQL then refuses the rename), and the pause between.
SWAP_ATTEMPTS = 5
SWAP_PAUSE = 1.0
BUSY_DATABASE = "is being accessed by other users"


def swap_sql(database: str, staging: str, previous: str) -> str:
    """SQL (for psql) that puts `staging` in the place of `database`, which becomes `previous`, in one transaction.

    A database cannot be renamed while anyone is connected to it: swap_databases first
    closes the live database to new connections (committed, so that new sessions see
    it), then this transaction ends the sessions still on it and renames both. The
    replaced database is opened again in the same transaction (it is kept to be read);
    should anything fail, the transaction is rolled back as a whole and swap_databases
    opens the live database again.
    """
    live = quote_literal(database)
    return ("BEGIN;\n"
            f"SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = {live} "
            "AND pid <> pg_backend_pid();\n"
            f"SELECT format('ALTER DATABASE %I RENAME TO %I', datname, {quote_literal(previous)}) FROM pg_database "
            f"WHERE datname = {live} \\gexec\n"
            f"SELECT format('ALTER DATABASE %I WITH ALLOW_CONNECTIONS true', datname) FROM pg_database "
            f"WHERE datname = {quote_literal(previous)} \\gexec\n"
            f"ALTER DATABASE {quote_ident(staging)} RENAME TO {quote_ident(database)};\n"
            "COMMIT;\n")


def connections_sql(database: str, allowed: bool) -> str:
    """SQL that opens or closes a database (if it exists) to new connections, superusers' included."""
    return (f"SELECT format('ALTER DATABASE %I WITH ALLOW_CONNECTIONS {str(allowed).lower()}', datname) "
            f"FROM pg_database WHERE datname = {quote_literal(database)} \\gexec\n")


def swap_databases(config: dict[str, Any], database: str, staging: str, previous: str) -> int:
    """Close the live database to new connections, run the swap (again while a session lingers); return the attempts.

    A client that keeps reconnecting cannot get in between the end of its session and
    the rename. Should the swap fail, the live database is opened again, unchanged.
    """
    psql(config, connections_sql(database, False))
    try:
        for attempt in range(1, SWAP_ATTEMPTS + 1):
            try:
                psql(config, swap_sql(database, staging, previous))
                return attempt
            except BackupError as exc:
                if BUSY_DATABASE not in str(exc) or attempt == SWAP_ATTEMPTS:
                    raise BackupError(f"{exc} (swap attempt {attempt} of {SWAP_ATTEMPTS}; {database} is unchanged: "
                                      "stop what connects to it, then restore again)") from exc
                time.sleep(SWAP_PAUSE)
    except BaseException:
        psql(config, connections_sql(database, True))
        raise
    raise AssertionError("unreachable")


def advance_sequences_sql(kept: list[tuple[str, int]]) -> str:
    """SQL that moves each sequence of the restored database that stands below its value in `kept` up to it.

    Prints the name of each sequence moved; sequences the restored database lacks are left out.
    """
    values = ", ".join(f"({quote_literal(name)}, {int(value)})" for name, value in kept)
    return ("SELECT name FROM (SELECT name, setval(name::regclass, value) FROM ("
            "SELECT kept.name, kept.value FROM pg_sequences s "
            f"JOIN (VALUES {values}) AS kept(name, value) ON format('%I.%I', s.schemaname, s.sequencename) = kept.name "
            "WHERE coalesce(s.last_value, 0) < kept.value OFFSET 0) AS behind OFFSET 0) AS moved ORDER BY 1;\n")


def advance_sequences(config: dict[str, Any], previous: str) -> list[str]:
    """Move the restored database's sequences up to where the replaced database's stood; return the moved ones.

    The replaced database holds the rows written since the dump. Their ids are not
    handed out again, so those rows can be copied back later without a clash.
    """
    listed = psql(config, "SELECT format('%I.%I', schemaname, sequencename) || '|' || last_value FROM pg_sequences "
                          "WHERE last_value IS NOT NULL ORDER BY 1;", database=previous)
    kept = [(name, int(value)) for name, value in (line.rsplit("|", 1) for line in listed.splitlines() if line)]
    if not kept:
        return []
    return psql(config, advance_sequences_sql(kept), database=config["database"]).split()


def cmd_discard_previous(config: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """Drop a database a restore swapped out (<database>_replaced, or the one named), kept until asked."""
    previous = name or previous_database(config)
    problem = kept_name_problem(config, previous)
    if problem:
        raise BackupError(f"discard-previous refuses {problem}. Nothing was dropped.")
    existed = database_exists(config, previous)
    psql(config, f"DROP DATABASE IF EXISTS {quote_ident(previous)} WITH (FORCE);")
    return {"changed": existed, "dropped": previous if existed else None}


def cmd_restore(config: dict[str, Any], name: str, jobs: int, keep_previous: bool,
                allow_unrecorded: bool = False, keep_as: str | None = None) -> dict[str, Any]:
    """Restore a verified dump over the live database.

    The dump goes into a new database first and its row counts are checked; only then
    is it swapped in, in one transaction, the live database becoming <database>_replaced
    (or `keep_as`). That one is dropped at the end, or with --keep-previous kept until
    `discard-previous` (restore.yml drops it once the API is healthy); with --keep-as it
    is kept under that name, which must be new: a kept database is never dropped by a
    later restore. A kept database keeps its ids: the restored database's sequences are
    moved past them. A run killed halfway leaves the live database as it was, and running
    again starts over. A dump whose record is missing or torn is refused unless
    `allow_unrecorded`.
    """
    started, watch = time.monotonic(), Stopwatch()
    database = config["database"]
    staging, previous = f"{database}_restoring", keep_as or previous_database(config)
    keep_previous = keep_previous or bool(keep_as)
    if keep_as:
        problem = kept_name_problem(config, keep_as) or (
            f"{keep_as}: a database of that name exists already (drop it with discard-previous --database {keep_as}, "
            "or name another)" if database_exists(config, keep_as) else None)
        if problem:
            raise BackupError(f"restore --keep-as refuses {problem}. Nothing was changed.")
    verified = cmd_verify(config, resolve_dump(config, name), allow_unrecorded)
    watch.lap("verify")
    restored = restore_and_compare(config, verified, staging, jobs, watch, checksums=False,
                                   also_drop=() if keep_as else (previous,))
    attempts = swap_databases(config, database, staging, previous)
    watch.lap("swap")
    swapped_out = database_exists(config, previous)
    advanced = advance_sequences(config, previous) if keep_previous and swapped_out else []
    if not keep_previous:
        cmd_discard_previous(config)
        watch.lap("drop_previous")
    return {"changed": True, "path": verified["path"], "file": verified["file"], "sha256": verified["sha256"],
            "database": database, "label": verified["label"], "created": verified["created"],
            "tables": restored, "rows": sum(restored.values()), "jobs": jobs,
            "compared": verified.get("tables") is not None, "phases": watch.phases,
            "unchecked": [] if verified.get("tables") is not None else ["row counts"],
            "record_problem": verified["record_problem"],
            "previous_database": previous if keep_previous and swapped_out else None,
            "swap_attempts": attempts, "sequences_advanced": advanced,
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
