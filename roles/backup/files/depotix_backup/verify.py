"""Checking a dump (checksum, record, archive listing) and planning a restore (its migrations against an image's).

A damaged dump (its checksum differs, pg_restore rejects it) raises Corrupt; a check that
could not run (Docker, the container or the disk not answering) raises Unreachable,
which says nothing against the dump.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from depotix_backup.database import CHECKSUM_METHOD, docker_exec, last_line
from depotix_backup.errors import BackupError, Corrupt, Unreachable
from depotix_backup.files import list_archive, sha256_of
from depotix_backup.names import dump_path, list_dumps, load_record, resolve_dump, sidecars


def read_record(path: Path) -> dict[str, Any]:
    """Return the .json record beside a dump, or {} when there is none."""
    try:
        record = json.loads(sidecars(path)[1].read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def check_checksum(config: dict[str, Any], path: Path) -> str:
    """Return the sha256 of an existing dump that matches its .sha256; fail, saying what to do, otherwise."""
    if not path.is_file():
        names = [d.name for d in list_dumps(config) if d.good][-5:]
        raise BackupError(f"{path.name} does not exist in {path.parent}: the newest dumps there are "
                          f"{', '.join(names) or 'none'} (depotix-backup list shows all).")
    checksum_file = sidecars(path)[0]
    if not checksum_file.is_file():
        raise BackupError(f"{checksum_file.name} is missing: without a checksum {path.name} cannot be trusted; "
                          "pick another dump.")
    try:
        expected = (checksum_file.read_text().split() or [""])[0]
        actual = sha256_of(path)
    except OSError as exc:
        raise Unreachable(f"{path.name} or its checksum cannot be read ({exc.strerror})") from exc
    if actual != expected:
        raise Corrupt(f"{path.name} does not match its checksum (expected {expected}, got {actual}): "
                      "the file is damaged; pick another dump.")
    return actual


def unchecked(record: dict[str, Any]) -> list[str]:
    """Return what a restore of the dump cannot compare with its record (all of it without a record)."""
    missing = [] if record.get("tables") is not None else ["row counts"]
    if record.get("checksum_method") != CHECKSUM_METHOD or not isinstance(record.get("checksums"), dict):
        missing.append("content checksums")
    return missing


def checked_record(path: Path, allow_unrecorded: bool) -> tuple[dict[str, Any], str | None]:
    """Return a dump's complete record and None; or, when `allow_unrecorded`, {} and what is wrong with it."""
    record, problem = load_record(path)
    if problem is None:
        return record or {}, None
    if not allow_unrecorded:
        raise BackupError(f"{problem}: without a complete record {path.name} cannot be checked after a restore "
                          "(row counts, content checksums); pick another dump, or accept it unchecked with "
                          "--allow-unrecorded.")
    return {}, problem


def cmd_verify(config: dict[str, Any], name: str, allow_unrecorded: bool = False) -> dict[str, Any]:
    """Check a dump's checksum, record and archive listing; return what was checked and what the dump holds.

    A dump whose record is missing or torn is refused, unless `allow_unrecorded`: then
    `unchecked` says what a restore of it cannot compare.
    """
    path = dump_path(config, name)
    actual = check_checksum(config, path)
    record, problem = checked_record(path, allow_unrecorded)
    entries = list_archive(config, path)
    return {"changed": False, "path": str(path), "file": path.name, "sha256": actual, "entries": entries,
            "created": record.get("created"), "label": record.get("label"), "release": record.get("release"),
            "tables": record.get("tables"), "rows": record.get("rows"), "size": path.stat().st_size,
            "migrations": record.get("migrations"), "sequence": record.get("sequence"),
            "checksums": record.get("checksums") if "content checksums" not in unchecked(record) else None,
            "record_problem": problem, "unchecked": unchecked(record)}


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
