"""Files of the backup directory: checksums, removal, free space, archive listing, the directory's lock."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from depotix_backup.database import docker_exec, first_error
from depotix_backup.errors import BackupError

CHUNK = 1024 * 1024
# The lock every writing run holds, in the backup directory (only this script uses it).
LOCK_FILE = ".depotix-backup.lock"


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


def wait_for_lock(fh: Any, lock_path: Path, deadline: float) -> None:
    """Take the exclusive lock on an open file, polling each second until `deadline` (monotonic)."""
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise BackupError(f"another depotix-backup run holds {lock_path}; "
                                  "wait for it to finish and rerun.") from None
            time.sleep(1)


@contextmanager
def directory_lock(config: dict[str, Any]) -> Iterator[None]:
    """Hold the backup directory's lock; wait for another run to finish, up to lock_timeout seconds."""
    backup_dir = Path(config["directory"])
    if not backup_dir.is_dir():
        raise BackupError(f"backup directory {backup_dir} is missing: run site.yml (backup role) first.")
    deadline = time.monotonic() + float(config.get("lock_timeout", 1800))
    with os.fdopen(os.open(backup_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600), "r+") as fh:
        wait_for_lock(fh, backup_dir / LOCK_FILE, deadline)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
