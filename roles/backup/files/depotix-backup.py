#!/usr/bin/env python3
"""Verified PostgreSQL backups of the Depotix database, through its container.

One implementation for every caller: the backup role's tasks, the host's cron
schedule and the restore play all run this script, which prints one JSON document
on stdout and, on failure, one line on stderr saying what went wrong and what to do.

A dump is written under a temporary name, checksummed, checked with
`pg_restore --list`, and only then renamed: a run that fails never leaves a file
that looks like a good backup.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CONFIG_FILE = Path("/etc/depotix/backup.json")
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A failure with a message meant for the operator."""


def load_config(path: Path) -> dict[str, Any]:
    """Return the settings the backup role wrote for this host."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BackupError(f"{path} is missing: run site.yml (backup role) on this host first.") from exc


def docker_exec(config: dict[str, Any], args: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """Run a command inside the database container as the database superuser."""
    cmd = [config["docker"], "exec", "-i", config["container"], *args]
    return subprocess.run(cmd, check=False, **kwargs)


def database_answers(config: dict[str, Any]) -> None:
    """Fail early, with a clear message, when the database does not answer."""
    probe = docker_exec(config, ["pg_isready", "-U", config["user"], "-d", config["database"]],
                        capture_output=True, text=True)
    if probe.returncode != 0:
        detail = (probe.stderr or probe.stdout).strip().splitlines()[-1:] or ["no answer"]
        raise BackupError(
            f"database {config['database']} in container {config['container']} does not answer "
            f"({detail[0]}): start it (site.yml) and rerun; earlier dumps are untouched."
        )


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_archive(config: dict[str, Any], path: Path) -> int:
    """Return the number of entries `pg_restore --list` finds in a dump, or raise."""
    with path.open("rb") as fh:
        listed = docker_exec(config, ["pg_restore", "--list"], stdin=fh, capture_output=True)
    if listed.returncode != 0:
        err = listed.stderr.decode(errors="replace").strip()
        raise BackupError(f"pg_restore --list rejects {path.name}: {err}")
    return sum(1 for line in listed.stdout.decode(errors="replace").splitlines()
               if line and not line.startswith(";"))


def table_counts_sql() -> str:
    """SQL that prints `schema.table<TAB>rows` for every user table, in one snapshot."""
    return r"""
SELECT format('SELECT %L || E''\t'' || count(*) FROM %I.%I;', n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1 \gexec
"""


def dump_name(prefix: str, label: str, now: dt.datetime) -> str:
    """Return the file name of a dump: prefix, UTC time, release label."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    safe_label = "".join(ch for ch in label if ch.isalnum() or ch in "._-")
    return f"{prefix}_{stamp}_{safe_label}.dump" if safe_label else f"{prefix}_{stamp}.dump"


def remove_quietly(*paths: Path) -> None:
    """Remove files that may or may not exist."""
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def run_dump(config: dict[str, Any], out: Path) -> dict[str, int]:
    """Dump the database into `out` and return the row count of every table.

    The counts and the dump read the same snapshot: a repeatable-read transaction
    exports it and pg_dump uses it with --snapshot, so the drill can compare exactly.
    """
    session = subprocess.Popen(
        [config["docker"], "exec", "-i", config["container"], "psql", "-X", "-q", "-A", "-t",
         "-v", "ON_ERROR_STOP=1", "-U", config["user"], "-d", config["database"]],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
    )
    assert session.stdin and session.stdout
    try:
        session.stdin.write("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
                            "SELECT pg_export_snapshot();\n")
        session.stdin.flush()
        snapshot = session.stdout.readline().strip()
        if not snapshot:
            raise BackupError("could not open a snapshot of the database: " + session.stderr.read().strip())
        with out.open("wb") as fh:
            dump = docker_exec(config, ["pg_dump", "-Fc", "-Z", str(config.get("compress", 6)),
                                        f"--snapshot={snapshot}", "-U", config["user"], "-d", config["database"]],
                               stdout=fh, stderr=subprocess.PIPE)
        if dump.returncode != 0:
            raise BackupError("pg_dump failed: " + dump.stderr.decode(errors="replace").strip())
        stdout, stderr = session.communicate(table_counts_sql() + "\nCOMMIT;\n", timeout=600)
        if session.returncode != 0:
            raise BackupError("counting rows failed: " + stderr.strip())
    finally:
        if session.poll() is None:
            session.kill()
    return parse_counts(stdout)


def parse_counts(output: str) -> dict[str, int]:
    """Return {table: rows} from lines of `schema.table<TAB>rows`."""
    counts = {}
    for line in output.splitlines():
        if "\t" in line:
            table, rows = line.split("\t", 1)
            counts[table] = int(rows)
    return counts


def cmd_dump(config: dict[str, Any], label: str) -> dict[str, Any]:
    """Take one verified dump; return its path, checksum and what it holds."""
    backup_dir = Path(config["directory"])
    if not backup_dir.is_dir():
        raise BackupError(f"backup directory {backup_dir} is missing: run site.yml (docker_host role) first.")
    database_answers(config)
    now = dt.datetime.now(dt.timezone.utc)
    final = backup_dir / dump_name(config["prefix"], label, now)
    partial = backup_dir / f".{final.name}.partial"
    os.umask(0o077)
    try:
        counts = run_dump(config, partial)
        checksum = sha256_of(partial)
        entries = list_archive(config, partial)
        meta = {"file": final.name, "sha256": checksum, "created": now.isoformat(timespec="seconds"),
                "label": label, "database": config["database"], "tables": counts, "entries": entries,
                "size": partial.stat().st_size}
        Path(f"{final}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        Path(f"{final}.sha256").write_text(f"{checksum}  {final.name}\n")
        os.replace(partial, final)
    except OSError as exc:
        remove_quietly(partial, Path(f"{final}.json"), Path(f"{final}.sha256"))
        raise BackupError(f"writing {final.name} failed ({exc.strerror}): free space in {backup_dir}, then rerun; "
                          "earlier dumps are untouched.") from exc
    except BaseException:
        remove_quietly(partial, Path(f"{final}.json"), Path(f"{final}.sha256"))
        raise
    return {"changed": True, "path": str(final), **meta}


def cmd_verify(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Check a dump's checksum and archive listing; return what was checked."""
    backup_dir = Path(config["directory"]).resolve()
    path = (backup_dir / name).resolve()
    if path.parent != backup_dir:
        raise BackupError(f"{name} is not a file of the backup directory {backup_dir}: give a file name from it.")
    if not path.is_file():
        raise BackupError(f"{path} does not exist: list {backup_dir} for the dumps there are.")
    sums = Path(f"{path}.sha256")
    if not sums.is_file():
        raise BackupError(f"{sums.name} is missing: without a checksum {path.name} cannot be trusted.")
    expected = sums.read_text().split()[0]
    actual = sha256_of(path)
    if actual != expected:
        raise BackupError(f"{path.name} does not match its checksum (expected {expected}, got {actual}): "
                          "the file is damaged; pick another dump.")
    entries = list_archive(config, path)
    return {"changed": False, "path": str(path), "sha256": actual, "entries": entries}


def psql(config: dict[str, Any], sql: str, database: str = "postgres") -> str:
    """Run SQL as the superuser over the container's local socket; return its output."""
    done = docker_exec(config, ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                "-U", config["user"], "-d", database],
                       input=sql, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"psql failed on {database}: {done.stderr.strip()}")
    return done.stdout


def quote_ident(name: str) -> str:
    """Return a PostgreSQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def table_counts(config: dict[str, Any], database: str) -> dict[str, int]:
    """Return the row count of every user table of a database."""
    return parse_counts(psql(config, table_counts_sql(), database))


def restore_into(config: dict[str, Any], path: Path, database: str, jobs: int) -> None:
    """Restore a dump into a new database of that name (dropped first if it exists)."""
    owner = config.get("owner") or config["user"]
    inside = f"/tmp/depotix-restore-{os.getpid()}.dump"
    psql(config, f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE);")
    psql(config, f"CREATE DATABASE {quote_ident(database)} OWNER {quote_ident(owner)};")
    copied = subprocess.run([config["docker"], "cp", str(path), f"{config['container']}:{inside}"],
                            capture_output=True, text=True, check=False)
    if copied.returncode != 0:
        raise BackupError(f"copying {path.name} into {config['container']} failed: {copied.stderr.strip()}")
    try:
        restored = docker_exec(config, ["pg_restore", "--exit-on-error", f"--jobs={jobs}", "-U", config["user"],
                                        "-d", database, inside], capture_output=True, text=True)
        if restored.returncode != 0:
            raise BackupError(f"pg_restore into {database} failed: {restored.stderr.strip()[-500:]}")
    finally:
        docker_exec(config, ["rm", "-f", inside], capture_output=True)


def resolve_dump(config: dict[str, Any], name: str) -> str:
    """Return the file name of a dump; `latest` is the newest complete dump."""
    if name != "latest":
        return name
    dumps = sorted(p.name for p in Path(config["directory"]).glob(f"{config['prefix']}_*.dump"))
    if not dumps:
        raise BackupError(f"there is no dump in {config['directory']}: take one with 'depotix-backup dump'.")
    return dumps[-1]


def cmd_restore(config: dict[str, Any], name: str, jobs: int) -> dict[str, Any]:
    """Restore a verified dump over the live database.

    The dump goes into a new database first; only when pg_restore succeeded is the live
    database dropped and the new one renamed into its place. A run killed halfway leaves
    the live database as it was, and running again starts over.
    """
    verified = cmd_verify(config, resolve_dump(config, name))
    database = config["database"]
    staging = f"{database}_restoring"
    restore_into(config, Path(verified["path"]), staging, jobs)
    psql(config, f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE);\n"
                 f"ALTER DATABASE {quote_ident(staging)} RENAME TO {quote_ident(database)};")
    return {"changed": True, "path": verified["path"], "sha256": verified["sha256"], "database": database,
            "tables": table_counts(config, database)}


def cmd_drill(config: dict[str, Any], name: str, jobs: int) -> dict[str, Any]:
    """Restore a dump into a scratch database, compare row counts with the dump's record, drop it."""
    verified = cmd_verify(config, resolve_dump(config, name))
    recorded = json.loads(Path(f"{verified['path']}.json").read_text()).get("tables", {})
    scratch = f"{config['database']}_drill"
    try:
        restore_into(config, Path(verified["path"]), scratch, jobs)
        restored = table_counts(config, scratch)
    finally:
        psql(config, f"DROP DATABASE IF EXISTS {quote_ident(scratch)} WITH (FORCE);")
    differences = {t: {"recorded": recorded.get(t), "restored": restored.get(t)}
                   for t in sorted(set(recorded) | set(restored)) if recorded.get(t) != restored.get(t)}
    result = {"changed": False, "path": verified["path"], "tables": len(restored),
              "rows": sum(restored.values()), "differences": differences, "ok": not differences}
    if differences:
        raise BackupError(f"drill of {Path(verified['path']).name} found different row counts: "
                          f"{json.dumps(differences)}")
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(prog="depotix-backup", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG_FILE)
    sub = parser.add_subparsers(dest="command", required=True)
    dump = sub.add_parser("dump", help="take a verified dump")
    dump.add_argument("--label", default="", help="release or reason, part of the file name")
    verify = sub.add_parser("verify", help="check a dump's checksum and archive")
    verify.add_argument("name", help="file name inside the backup directory, or latest")
    for command, text in (("restore", "restore a verified dump over the live database"),
                          ("drill", "restore a dump into a scratch database and compare row counts")):
        sub_parser = sub.add_parser(command, help=text)
        sub_parser.add_argument("name", help="file name inside the backup directory, or latest")
        sub_parser.add_argument("--jobs", type=int, default=2, help="parallel pg_restore jobs")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
        if args.command == "dump":
            result = cmd_dump(config, args.label)
        elif args.command == "verify":
            result = cmd_verify(config, resolve_dump(config, args.name))
        elif args.command == "restore":
            result = cmd_restore(config, args.name, args.jobs)
        else:
            result = cmd_drill(config, args.name, args.jobs)
    except BackupError as exc:
        print(f"depotix-backup: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
