"""Taking a dump: pg_dump and the record of what it holds read in one snapshot, written durably.

The dump is checksummed and checked with `pg_restore --list` under a temporary name. Then,
each file flushed to the disk before it is renamed: the .sha256, the dump itself (the
directory flushed), and last its .json record (the directory flushed again). Only a dump
with a complete record counts (names.py), so a run that dies at any point leaves either
a complete dump or nothing that counts; a run that fails keeps no file of its own.

Nothing waits forever: the snapshot's session and pg_dump give up on a table lock after
lock_wait_timeout seconds, and the whole pg_dump is stopped after dump_timeout seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

from depotix_backup import clock
from depotix_backup.database import CHECKSUM_METHOD
from depotix_backup.errors import BackupError
from depotix_backup.files import Lister, free_bytes, fsync_path, remove_quietly, sha256_of, write_durably
from depotix_backup.ledger import ledger_release
from depotix_backup.names import dump_name, next_sequence, sidecars, temporary
from depotix_backup.snapshot import run_dump

# Below this many free bytes after a failed write, the directory is reported full.
FULL_MARGIN = 64 * 1024


def unique_final_path(config: dict[str, Any], label: str) -> tuple[Path, dt.datetime]:
    """Return the path of a new dump and its time; a name already taken waits for the clock's next second.

    The time only names the dump: the order of dumps is their sequence number.
    """
    backup_dir = Path(config["directory"])
    for _ in range(3):
        now = clock.utc_now().replace(microsecond=0)
        final = backup_dir / dump_name(config["prefix"], label, now)
        if not any(p.exists() for p in (final, *sidecars(final))):
            return final, now
        time.sleep(1.05 - clock.utc_now().microsecond / 1e6)
    raise BackupError(f"{final.name} already exists and the clock did not move on: check the host's clock "
                      "(timedatectl) and rerun; earlier dumps are untouched.")


def full_disk_message(backup_dir: Path, detail: str) -> str | None:
    """Return an operator message when a write failed because the backup directory is full."""
    free = free_bytes(backup_dir)
    if "no space left" in detail.lower() or free < FULL_MARGIN:
        return (f"the backup directory {backup_dir} is full ({free} bytes free): free space or move old dumps "
                "away, then rerun; no partial dump was kept and earlier dumps are untouched.")
    return None


def put_in_place(final: Path, partial: Path, meta: dict[str, Any]) -> None:
    """Give a checked dump its name: .sha256, dump, then the record last, each flushed before it is renamed."""
    checksum_file, record_file = sidecars(final)
    write_durably(checksum_file, f"{meta['sha256']}  {final.name}\n", temporary(checksum_file))
    os.replace(partial, final)
    fsync_path(final.parent)  # the dump and its .sha256 are on disk before the record says it is complete
    write_durably(record_file, json.dumps(meta, indent=2, sort_keys=True) + "\n", temporary(record_file))
    fsync_path(final.parent)


def write_dump(config: dict[str, Any], partial: Path, final: Path, now: dt.datetime, label: str,
               release: str | None) -> dict[str, Any]:
    """Dump into `partial`, check it, and put it in place with its sidecars; return its record."""
    lister = Lister(config)  # its docker exec starts while pg_dump runs
    try:
        try:
            held = run_dump(config, partial)
        except BackupError as exc:
            message = full_disk_message(Path(config["directory"]), str(exc))
            raise BackupError(message or f"{exc}; no partial dump was kept and earlier dumps are untouched.") from exc
        checksum = sha256_of(partial)
        entries = lister.entries(partial)
    finally:
        lister.close()
    meta = {"file": final.name, "sha256": checksum, "created": now.isoformat(timespec="seconds"),
            "sequence": next_sequence(config), "label": label, "release": release,
            "database": config["database"], "tables": held["tables"], "rows": sum(held["tables"].values()),
            "checksums": held["checksums"], "checksum_method": CHECKSUM_METHOD,
            "migrations": held["migrations"], "entries": entries, "size": partial.stat().st_size}
    put_in_place(final, partial, meta)
    return meta


def cmd_dump(config: dict[str, Any], label: str | None) -> dict[str, Any]:
    """Take one verified dump; return its path, checksum and what it holds."""
    backup_dir = Path(config["directory"])
    release = ledger_release(config)
    label = label or release or ""
    final, now = unique_final_path(config, label)
    partial = temporary(final)
    ours = (partial, *(temporary(p) for p in sidecars(final)), final, *sidecars(final))
    os.umask(0o077)
    try:
        meta = write_dump(config, partial, final, now, label, release)
    except OSError as exc:
        remove_quietly(*ours)
        raise BackupError(full_disk_message(backup_dir, str(exc)) or
                          f"writing {final.name} failed ({exc.strerror}); no partial dump was kept.") from exc
    except BaseException:
        remove_quietly(*ours)
        raise
    return {"changed": True, "path": str(final), **meta}
