#!/usr/bin/env python3
"""Verified PostgreSQL backups of the Depotix database, through its container.

One implementation for every caller: the backup role's tasks, the host's cron
schedule, backup.yml, restore.yml and the deploy's undo all run this script, which
prints one JSON document on stdout and, on failure, one line on stderr saying what
went wrong and what to do (with --log, both go to that file instead).

A dump is written under a temporary name, checksummed, checked with
`pg_restore --list`, and only then renamed: a run that fails never leaves a file
that looks like a good backup. Restores and drills load a dump into a new
database and compare its row counts with those recorded at dump time before
anything else happens; a restore only then swaps the new database in.

Commands that write (dump, restore, drill, prune, offsite, scheduled) hold a lock
in the backup directory, so the host's schedule and a play never interleave.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The ledger's rule (which release runs now) is the release_ledger module's own code,
# installed beside this script by the backup role (LIB_DIR), or found beside it here.
LIB_DIR = "/usr/local/lib/depotix-backup"
sys.path[:0] = [LIB_DIR, os.path.dirname(os.path.realpath(__file__))]
from release_ledger import release_stack  # noqa: E402

CONFIG_FILE = Path("/etc/depotix/backup.json")
CHUNK = 1024 * 1024
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# Label suffix of the safety dump restore.yml takes first; `latest` never picks one.
SAFETY_SUFFIX = "before_restore"
# restore.yml's record of a restore in progress (kept beside the dumps, never pruned).
RESTORE_MARKER = ".restore-in-progress.json"
LOCK_FILE = ".depotix-backup.lock"
# Below this many free bytes after a failed write, the directory is reported full.
FULL_MARGIN = 64 * 1024
LOCKING_COMMANDS = {"dump", "restore", "drill", "prune", "offsite", "scheduled", "discard-previous"}


class BackupError(Exception):
    """A failure with a message meant for the operator."""


class Terminated(Exception):
    """SIGTERM or SIGHUP: unwind so that temporary files are removed."""


@dataclasses.dataclass(frozen=True)
class Dump:
    """A dump file in the backup directory, as its name and sidecar files describe it."""

    name: str
    time: dt.datetime
    label: str
    good: bool  # its .sha256 is beside it (written before the dump got its final name)


# ---------------------------------------------------------------------------- settings, names


def load_config(path: Path) -> dict[str, Any]:
    """Return the settings the backup role wrote for this host."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BackupError(f"{path} is missing: run site.yml (backup role) on this host first.") from exc


def dump_name(prefix: str, label: str, now: dt.datetime) -> str:
    """Return the file name of a dump: prefix, UTC time, label (the release)."""
    stamp = now.astimezone(dt.timezone.utc).strftime(STAMP_FORMAT)
    safe_label = "".join(ch for ch in label if ch.isalnum() or ch in "._-")
    return f"{prefix}_{stamp}_{safe_label}.dump" if safe_label else f"{prefix}_{stamp}.dump"


def parse_dump_name(prefix: str, name: str) -> tuple[dt.datetime, str] | None:
    """Return (UTC time, label) of a dump's file name, or None for any other file."""
    if not (name.startswith(prefix + "_") and name.endswith(".dump")):
        return None
    stem = name[len(prefix) + 1:-len(".dump")]
    stamp, _, label = stem.partition("_")
    try:
        when = dt.datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    return when, label


def dump_path(config: dict[str, Any], name: str) -> Path:
    """Return the path of a dump named by the operator, refusing anything outside the backup directory."""
    backup_dir = Path(config["directory"]).resolve()
    path = (backup_dir / name).resolve()
    if (".." in Path(name).parts or path.parent != backup_dir or path.name.startswith(".")
            or not path.name.endswith(".dump")):
        raise BackupError(f"{name} is not a dump of the backup directory {backup_dir}: give the file name "
                          "of a .dump in it (depotix-backup list), or latest.")
    return path


def sidecars(path: Path) -> tuple[Path, Path]:
    """Return the checksum and record files that belong beside a dump."""
    return Path(f"{path}.sha256"), Path(f"{path}.json")


def list_dumps(config: dict[str, Any]) -> list[Dump]:
    """Return the dumps of the backup directory, oldest first."""
    found = []
    for path in Path(config["directory"]).iterdir():
        parsed = parse_dump_name(config["prefix"], path.name)
        if parsed and path.is_file():
            found.append(Dump(path.name, parsed[0], parsed[1], sidecars(path)[0].is_file()))
    return sorted(found, key=lambda d: (d.time, d.name))


def resolve_dump(config: dict[str, Any], name: str) -> str:
    """Return the file name of a dump; `latest` is the newest complete dump that is not a restore's safety dump."""
    if name != "latest":
        return name
    candidates = [d for d in list_dumps(config) if d.good and not d.label.endswith(SAFETY_SUFFIX)]
    if not candidates:
        raise BackupError(f"there is no complete dump in {config['directory']} (restore safety dumps aside): "
                          "take one with 'depotix-backup dump', or name a file.")
    return candidates[-1].name


# ---------------------------------------------------------------------------- the release ledger


def ledger_release(config: dict[str, Any]) -> str | None:
    """Return the current release from the host's ledger, or None when there is no readable ledger."""
    path = config.get("ledger")
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    entries = data.get("entries") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        return None
    stack = release_stack([e for e in entries if isinstance(e, dict)])
    return stack[-1].get("release") if stack else None


# ---------------------------------------------------------------------------- talking to the database


def docker_exec(config: dict[str, Any], args: list[str], env: dict[str, str] | None = None,
                **kwargs: Any) -> subprocess.CompletedProcess:
    """Run a command inside the database container (as root there; clients connect as the superuser)."""
    env_args = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
    cmd = [config["docker"], "exec", "-i", *env_args, config["container"], *args]
    return subprocess.run(cmd, check=False, **kwargs)


def last_line(text: str, default: str = "no answer") -> str:
    """Return the last non-empty line of a command's output."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else default


def first_error(text: str, default: str = "no message") -> str:
    """Return the line of a PostgreSQL client's stderr that says what failed (its first error), else the last."""
    for line in text.splitlines():
        if any(word in line for word in ("error:", "ERROR:", "FATAL:")):
            return line.strip()
    return last_line(text, default)


def database_answers(config: dict[str, Any]) -> None:
    """Fail early, with a clear message, when the database does not answer."""
    probe = docker_exec(config, ["pg_isready", "-U", config["user"], "-d", config["database"]],
                        capture_output=True, text=True)
    if probe.returncode != 0:
        raise BackupError(
            f"database {config['database']} in container {config['container']} does not answer "
            f"({last_line(probe.stderr or probe.stdout)}): start it (site.yml) and rerun; earlier dumps are untouched."
        )


def psql(config: dict[str, Any], sql: str, database: str = "postgres") -> str:
    """Run SQL as the superuser over the container's local socket; return its output."""
    done = docker_exec(config, ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                "-U", config["user"], "-d", database],
                       input=sql, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"psql failed on {database}: {first_error(done.stderr)}")
    return done.stdout


def quote_ident(name: str) -> str:
    """Return a PostgreSQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Return a PostgreSQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def snapshot_sql() -> str:
    """SQL printing `count<TAB>schema.table<TAB>rows` per user table and `migration<TAB>app<TAB>name`.

    Run inside the dump's snapshot, it records what the dump holds: the drill and the
    restore compare counts with it, and restore.yml compares the migrations with the image.
    """
    return r"""
SELECT format('SELECT ''count'' || E''\t'' || %L || E''\t'' || count(*) FROM %I.%I;',
              n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1 \gexec
SELECT 'SELECT ''migration'' || E''\t'' || app || E''\t'' || name FROM django_migrations ORDER BY id;'
WHERE to_regclass('django_migrations') IS NOT NULL \gexec
"""


def parse_snapshot(output: str) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Return ({table: rows}, {app: [applied migrations in order]}) from snapshot_sql's output."""
    counts: dict[str, int] = {}
    migrations: dict[str, list[str]] = {}
    for line in output.splitlines():
        kind, _, rest = line.partition("\t")
        first, _, second = rest.partition("\t")
        if kind == "count" and second:
            counts[first] = int(second)
        elif kind == "migration" and second:
            migrations.setdefault(first, []).append(second)
    return counts, migrations


def table_counts(config: dict[str, Any], database: str) -> dict[str, int]:
    """Return the row count of every user table of a database."""
    return parse_snapshot(psql(config, snapshot_sql(), database))[0]


# ---------------------------------------------------------------------------- files


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def remove_quietly(*paths: Path) -> list[str]:
    """Remove files that may or may not exist; return the names of those removed."""
    removed = []
    for path in paths:
        try:
            path.unlink()
            removed.append(path.name)
        except FileNotFoundError:
            pass
    return removed


def free_bytes(directory: Path) -> int:
    """Return the bytes an unprivileged writer may still use in a directory's file system."""
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def list_archive(config: dict[str, Any], path: Path) -> int:
    """Return the number of entries `pg_restore --list` finds in a dump, or raise."""
    with path.open("rb") as fh:
        listed = docker_exec(config, ["pg_restore", "--list"], stdin=fh, capture_output=True)
    if listed.returncode != 0:
        reason = first_error(listed.stderr.decode(errors="replace"))
        raise BackupError(f"pg_restore --list rejects {path.name}: {reason}")
    return sum(1 for line in listed.stdout.decode(errors="replace").splitlines()
               if line and not line.startswith(";"))


@contextmanager
def directory_lock(config: dict[str, Any]) -> Iterator[None]:
    """Hold the backup directory's lock; wait for another run to finish, up to lock_timeout seconds."""
    backup_dir = Path(config["directory"])
    if not backup_dir.is_dir():
        raise BackupError(f"backup directory {backup_dir} is missing: run site.yml (backup role) first.")
    deadline = time.monotonic() + float(config.get("lock_timeout", 1800))
    with os.fdopen(os.open(backup_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600), "r+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackupError(f"another depotix-backup run holds {backup_dir / LOCK_FILE}; "
                                      "wait for it to finish and rerun.") from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------- dump


def run_dump(config: dict[str, Any], out: Path) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Dump the database into `out`; return what it holds (row counts, applied migrations).

    The record and the dump read the same snapshot: a repeatable-read transaction
    exports it and pg_dump uses it with --snapshot, so a drill can compare exactly. The
    counting runs in that transaction while pg_dump runs.
    """
    session = subprocess.Popen(
        [config["docker"], "exec", "-i", config["container"], "psql", "-X", "-q", "-A", "-t",
         "-v", "ON_ERROR_STOP=1", "-U", config["user"], "-d", config["database"]],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
    )
    assert session.stdin and session.stdout
    try:
        session.stdin.write("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_export_snapshot();\n")
        session.stdin.flush()
        snapshot = session.stdout.readline().strip()
        if not snapshot:
            session.kill()
            raise BackupError("could not open a snapshot of the database: " + first_error(session.stderr.read()))
        with out.open("wb") as fh:
            dump = subprocess.Popen(
                [config["docker"], "exec", "-i", config["container"], "pg_dump", "-Fc", "-Z",
                 str(config.get("compress", 6)), f"--snapshot={snapshot}", "-U", config["user"], "-d",
                 config["database"]],
                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.PIPE)
            try:
                # The exporting transaction stays open until pg_dump is done: it imports the
                # snapshot when it starts, whenever that is.
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


def cmd_dump(config: dict[str, Any], label: str | None) -> dict[str, Any]:
    """Take one verified dump; return its path, checksum and what it holds."""
    backup_dir = Path(config["directory"])
    database_answers(config)
    release = ledger_release(config)
    label = label or release or ""
    final, now = unique_final_path(config, label)
    partial = backup_dir / f".{final.name}.partial"
    checksum_file, record_file = sidecars(final)
    os.umask(0o077)
    try:
        try:
            counts, migrations = run_dump(config, partial)
        except BackupError as exc:
            message = full_disk_message(backup_dir, str(exc))
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
    except OSError as exc:
        remove_quietly(partial, record_file, checksum_file)
        raise BackupError(full_disk_message(backup_dir, str(exc)) or
                          f"writing {final.name} failed ({exc.strerror}); no partial dump was kept.") from exc
    except BaseException:
        remove_quietly(partial, record_file, checksum_file)
        raise
    return {"changed": True, "path": str(final), **meta}


# ---------------------------------------------------------------------------- verify, plan


def read_record(path: Path) -> dict[str, Any]:
    """Return the .json record beside a dump, or {} when there is none."""
    try:
        return json.loads(sidecars(path)[1].read_text())
    except (OSError, ValueError):
        return {}


def cmd_verify(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Check a dump's checksum and archive listing; return what was checked and what the dump holds."""
    path = dump_path(config, name)
    if not path.is_file():
        names = [d.name for d in list_dumps(config) if d.good][-5:]
        raise BackupError(f"{path.name} does not exist in {path.parent}: the newest dumps there are "
                          f"{', '.join(names) or 'none'} (depotix-backup list shows all).")
    checksum_file = sidecars(path)[0]
    if not checksum_file.is_file():
        raise BackupError(f"{checksum_file.name} is missing: without a checksum {path.name} cannot be trusted; "
                          "pick another dump.")
    expected = (checksum_file.read_text().split() or [""])[0]
    actual = sha256_of(path)
    if actual != expected:
        raise BackupError(f"{path.name} does not match its checksum (expected {expected}, got {actual}): "
                          "the file is damaged; pick another dump.")
    entries = list_archive(config, path)
    record = read_record(path)
    return {"changed": False, "path": str(path), "file": path.name, "sha256": actual, "entries": entries,
            "created": record.get("created"), "label": record.get("label"), "release": record.get("release"),
            "tables": record.get("tables"), "rows": record.get("rows"), "size": path.stat().st_size,
            "migrations": record.get("migrations")}


def archive_migrations(config: dict[str, Any], path: Path) -> dict[str, list[str]]:
    """Return the applied migrations stored in a dump's django_migrations table (read from the archive)."""
    with path.open("rb") as fh:
        out = docker_exec(config, ["pg_restore", "--data-only", "--table=django_migrations", "-f", "-"],
                          stdin=fh, capture_output=True)
    if out.returncode != 0:
        raise BackupError(f"reading django_migrations from {path.name} failed: "
                          f"{last_line(out.stderr.decode(errors='replace'))}")
    return parse_copy_migrations(out.stdout.decode(errors="replace"))


def parse_copy_migrations(sql: str) -> dict[str, list[str]]:
    """Return {app: [names]} from the COPY block of django_migrations in pg_restore's SQL output."""
    migrations: dict[str, list[str]] = {}
    columns: list[str] | None = None
    rows: list[tuple[int, str, str]] = []
    for line in sql.splitlines():
        if columns is None:
            if line.startswith("COPY ") and "django_migrations" in line and "(" in line:
                columns = [c.strip() for c in line[line.index("(") + 1:line.index(")")].split(",")]
            continue
        if line == "\\.":
            break
        values = dict(zip(columns, line.split("\t")))
        rows.append((int(values.get("id", len(rows))), values["app"], values["name"]))
    for _, app, name in sorted(rows):
        migrations.setdefault(app, []).append(name)
    return migrations


def migration_gap(code: dict[str, dict[str, list[str]]],
                  dump: dict[str, list[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Return (behind, ahead): per app, the image's migrations the dump lacks, and the dump's the image lacks.

    `code` is django_migration's `apps` (applied + unapplied = the migrations in the image's code).
    """
    behind, ahead = {}, {}
    for app, state in sorted(code.items()):
        in_code = list(state.get("applied", [])) + list(state.get("unapplied", []))
        missing = [name for name in in_code if name not in set(dump.get(app, []))]
        if missing:
            behind[app] = missing
    for app, names in sorted(dump.items()):
        in_code = set(code.get(app, {}).get("applied", [])) | set(code.get(app, {}).get("unapplied", []))
        unknown = [name for name in names if name not in in_code]
        if unknown:
            ahead[app] = unknown
    return behind, ahead


def cmd_plan(config: dict[str, Any], name: str, code: dict[str, Any]) -> dict[str, Any]:
    """Compare a dump's migration state with an image's code; say whether it can run that image as it is."""
    path = dump_path(config, resolve_dump(config, name))
    record = read_record(path)
    migrations = record.get("migrations")
    source = "record"
    if migrations is None:
        migrations, source = archive_migrations(config, path), "archive"
    behind, ahead = migration_gap(code, migrations)
    return {"changed": False, "file": path.name, "label": record.get("label"), "release": record.get("release"),
            "created": record.get("created"), "migrations": migrations, "migrations_from": source,
            "behind": behind, "ahead": ahead, "matches": not behind and not ahead}


# ---------------------------------------------------------------------------- restore, drill


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


# Inside the container: a parallel pg_restore needs a file it can seek in, so the dump is
# streamed into one first; copies left by a killed run go (one run at a time: the lock).
RESTORE_IN_CONTAINER = (
    'rm -f /tmp/depotix-restore-*.dump && cat > "$1" && '
    'pg_restore --exit-on-error --jobs="$2" -U "$3" -d "$4" "$1"; status=$?; rm -f "$1"; exit $status'
)


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


class Stopwatch:
    """Seconds spent in each phase of a command, for its result."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.last = time.monotonic()

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.phases[phase] = round(now - self.last, 2)
        self.last = now


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


# ---------------------------------------------------------------------------- retention


def retention_policy(config: dict[str, Any]) -> dict[str, int]:
    """Return the retention settings: how many newest dumps, days and weeks to keep."""
    return {key: int(config.get(key, default)) for key, default in
            (("keep_last", 3), ("keep_daily", 7), ("keep_weekly", 4))}


def select_retained(dumps: list[Dump], now: dt.datetime, keep_last: int, keep_daily: int, keep_weekly: int,
                    protected: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Return {dump name: reasons} of the dumps to keep; every other dump is to be deleted.

    Only good dumps (with a .sha256) count. Kept are: the newest good dump, always; the
    `keep_last` newest good dumps; the newest good dump of each of the last `keep_daily`
    UTC days, today included; the newest good dump of each of the last `keep_weekly`
    ISO weeks, this week included; and the `protected` ones (a restore in progress).
    """
    good = sorted((d for d in dumps if d.good), key=lambda d: (d.time, d.name), reverse=True)
    keep: dict[str, list[str]] = {}

    def add(dump: Dump, reason: str) -> None:
        keep.setdefault(dump.name, []).append(reason)

    if good:
        add(good[0], "newest")
    for dump in good[:max(0, keep_last)]:
        add(dump, "last")
    today = now.astimezone(dt.timezone.utc).date()
    days = {today - dt.timedelta(days=n) for n in range(max(0, keep_daily))}
    monday = today - dt.timedelta(days=today.weekday())
    weeks = {monday - dt.timedelta(weeks=n) for n in range(max(0, keep_weekly))}
    seen_days: set[dt.date] = set()
    seen_weeks: set[dt.date] = set()
    for dump in good:  # newest first: the first dump met in a period is its newest
        day = dump.time.date()
        week = day - dt.timedelta(days=day.weekday())
        if day in days and day not in seen_days:
            seen_days.add(day)
            add(dump, "daily")
        if week in weeks and week not in seen_weeks:
            seen_weeks.add(week)
            add(dump, "weekly")
    for dump in dumps:
        if dump.name in protected:
            add(dump, "restore in progress")
    return keep


def restore_in_progress(config: dict[str, Any]) -> frozenset[str]:
    """Return the dumps an unfinished restore.yml run relies on (its dump and its safety dump)."""
    try:
        marker = json.loads((Path(config["directory"]) / RESTORE_MARKER).read_text())
    except (OSError, ValueError):
        return frozenset()
    return frozenset(str(marker.get(key)) for key in ("dump", "safety_backup") if marker.get(key))


def orphans(config: dict[str, Any], dumps: list[Dump]) -> list[Path]:
    """Return files left by runs that died: partial dumps, and sidecars whose dump is gone."""
    backup_dir = Path(config["directory"])
    names = {d.name for d in dumps}
    found = []
    for path in backup_dir.iterdir():
        if path.name.startswith(f".{config['prefix']}_") and path.name.endswith(".dump.partial"):
            found.append(path)
        elif path.name.endswith((".dump.sha256", ".dump.json")) and not path.name.startswith("."):
            owner = path.name.rsplit(".", 1)[0]
            if parse_dump_name(config["prefix"], owner) and owner not in names:
                found.append(path)
    return sorted(found)


def remove_dump(path: Path) -> list[str]:
    """Remove a dump and its sidecars; return the names removed."""
    return remove_quietly(path, *sidecars(path))


def cmd_prune(config: dict[str, Any], dry_run: bool, verified: str | None = None,
              now: dt.datetime | None = None) -> dict[str, Any]:
    """Apply the retention policy; never delete the newest good dump, and check it before deleting anything."""
    backup_dir = Path(config["directory"])
    now = now or dt.datetime.now(dt.timezone.utc)
    dumps = list_dumps(config)
    good = [d for d in dumps if d.good]
    if good and good[-1].name != verified and not dry_run:
        try:
            cmd_verify(config, good[-1].name)
        except BackupError as exc:
            removed = remove_dump(backup_dir / good[-1].name)
            raise BackupError(f"the newest dump failed verification ({exc}); removed {', '.join(removed)} and "
                              "deleted nothing else: take a new dump (depotix-backup dump).") from exc
    policy = retention_policy(config)
    keep = select_retained(dumps, now, protected=restore_in_progress(config), **policy)
    doomed = [d.name for d in dumps if d.name not in keep]
    leftovers = [p.name for p in orphans(config, dumps)]
    deleted: list[str] = []
    if not dry_run:
        for name in doomed:
            deleted += remove_dump(backup_dir / name)
        deleted += remove_quietly(*(backup_dir / name for name in leftovers))
    return {"changed": bool(doomed or leftovers) and not dry_run, "dry_run": dry_run,
            "now": now.isoformat(timespec="seconds"), "policy": policy, "kept": keep,
            "delete": doomed, "orphans": leftovers, "deleted": deleted}


# ---------------------------------------------------------------------------- offsite


def offsite_argv(config: dict[str, Any], files: list[str]) -> list[str] | None:
    """Return the command that copies a dump's files offsite, or None when no copy is configured.

    `offsite_command` is run without a shell, with the dump, its .sha256 and its .json
    appended; `offsite_rsync_target` is an rsync destination (host:path/ or a directory).
    """
    if config.get("offsite_command"):
        return shlex.split(config["offsite_command"]) + files
    if config.get("offsite_rsync_target"):
        return ["rsync", "-a", "--chmod=F600", *files, config["offsite_rsync_target"]]
    return None


def cmd_offsite(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Copy a dump with its .sha256 and .json offsite, with the configured command."""
    path = dump_path(config, resolve_dump(config, name))
    files = [str(path), *(str(p) for p in sidecars(path))]
    argv = offsite_argv(config, files)
    if argv is None:
        return {"changed": False, "skipped": True, "file": path.name}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=int(config.get("offsite_timeout", 3600)))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"the offsite copy of {path.name} could not run ({exc}); the dump is kept here, "
                          "verified.") from exc
    if done.returncode != 0:
        raise BackupError(f"the offsite copy of {path.name} failed (exit {done.returncode}: "
                          f"{last_line(done.stderr or done.stdout, 'no message')}); the dump is kept here, verified.")
    return {"changed": True, "skipped": False, "file": path.name, "command": argv[0]}


# ---------------------------------------------------------------------------- the host's schedule


def cmd_scheduled(config: dict[str, Any]) -> dict[str, Any]:
    """The daily job: a verified dump labelled with the ledger's release, the offsite copy, retention.

    Retention runs only after a good dump, and also when the offsite copy failed; the
    run then fails, saying so.
    """
    dumped = cmd_dump(config, None)
    offsite: dict[str, Any] | None = None
    offsite_error = None
    try:
        offsite = cmd_offsite(config, dumped["file"])
    except BackupError as exc:
        offsite_error = str(exc)
    pruned = cmd_prune(config, dry_run=False, verified=dumped["file"])
    if offsite_error:
        raise BackupError(f"{dumped['file']} is verified and retention ran, but {offsite_error}")
    return {"changed": True, "dump": dumped, "offsite": offsite, "prune": pruned}


# ---------------------------------------------------------------------------- command line


def cmd_list(config: dict[str, Any]) -> dict[str, Any]:
    """Return the dumps of the backup directory, newest first."""
    backup_dir = Path(config["directory"])
    return {"changed": False, "directory": str(backup_dir), "dumps": [
        {"file": d.name, "time": d.time.isoformat(), "label": d.label, "complete": d.good,
         "size": (backup_dir / d.name).stat().st_size} for d in reversed(list_dumps(config))]}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(prog="depotix-backup", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG_FILE)
    parser.add_argument("--log", type=Path, help="append the outcome to this file instead of printing errors")
    sub = parser.add_subparsers(dest="command", required=True)
    dump = sub.add_parser("dump", help="take a verified dump")
    dump.add_argument("--label", default=None, help="part of the file name; default: the ledger's current release")
    for command, text in (("verify", "check a dump's checksum and archive"),
                          ("plan", "compare a dump's migrations with an image's (django_migration apps JSON on stdin)"),
                          ("offsite", "copy a dump and its sidecars with the configured offsite command")):
        sub.add_parser(command, help=text).add_argument("name", help="file name in the backup directory, or latest")
    for command, text in (("restore", "restore a verified dump over the live database"),
                          ("drill", "restore a dump into a scratch database and compare row counts")):
        sub_parser = sub.add_parser(command, help=text)
        sub_parser.add_argument("name", help="file name in the backup directory, or latest")
        sub_parser.add_argument("--jobs", type=int, default=None, help="parallel pg_restore jobs")
        if command == "restore":
            sub_parser.add_argument("--keep-previous", action="store_true",
                                    help="keep the replaced database as <database>_replaced "
                                         "(discard-previous drops it)")
    sub.add_parser("discard-previous", help="drop the database the last restore --keep-previous swapped out")
    prune = sub.add_parser("prune", help="delete the dumps the retention policy does not keep")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    prune.add_argument("--verified", default=None, help="the newest dump, just verified (not checked again)")
    sub.add_parser("scheduled", help="the host's daily job: dump, offsite copy, retention")
    sub.add_parser("list", help="list the dumps, newest first")
    return parser.parse_args(argv)


def run_command(config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Run the command the arguments name and return its result."""
    jobs = getattr(args, "jobs", None) or int(config.get("jobs", 2))
    if args.command == "dump":
        return cmd_dump(config, args.label)
    if args.command == "verify":
        return cmd_verify(config, resolve_dump(config, args.name))
    if args.command == "plan":
        try:
            code = json.loads(sys.stdin.read() or "{}")
        except ValueError as exc:
            raise BackupError(f"plan expects django_migration's apps as JSON on stdin: {exc}") from exc
        return cmd_plan(config, args.name, code)
    if args.command == "restore":
        return cmd_restore(config, args.name, jobs, args.keep_previous)
    if args.command == "discard-previous":
        return cmd_discard_previous(config)
    if args.command == "drill":
        return cmd_drill(config, args.name, jobs)
    if args.command == "prune":
        return cmd_prune(config, args.dry_run, args.verified)
    if args.command == "offsite":
        return cmd_offsite(config, args.name)
    if args.command == "scheduled":
        return cmd_scheduled(config)
    return cmd_list(config)


def append_log(path: Path, command: str, text: str) -> None:
    """Append one timestamped line to the log file."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with path.open("a") as fh:
        fh.write(f"{stamp} depotix-backup[{os.getpid()}] {command}: {text}\n")


def raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(f"stopped by signal {signum}")


def main(argv: list[str]) -> int:
    os.umask(0o077)  # every file this script creates (dumps, records, lock, log) is 0600
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, raise_terminated)
    try:
        config = load_config(args.config)
        if args.command in LOCKING_COMMANDS:
            with directory_lock(config):
                result = run_command(config, args)
        else:
            result = run_command(config, args)
    except (BackupError, Terminated) as exc:
        if args.log:
            append_log(args.log, args.command, f"FAILED: {exc}")
        else:
            print(f"depotix-backup: {exc}", file=sys.stderr)
        return 1
    except Exception:
        if not args.log:
            raise
        append_log(args.log, args.command, "CRASHED:\n" + traceback.format_exc())
        return 2
    if args.log:
        append_log(args.log, args.command, "ok " + json.dumps(result, sort_keys=True))
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
