"""Files of the backup directory: checksums, durable writes, removal, free space, archive listing, the lock."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from depotix_backup.database import docker_exec, docker_timeout, first_error, last_line
from depotix_backup.errors import BackupError, Corrupt, Unreachable

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


def fsync_path(path: Path) -> None:
    """Flush a file or a directory (the names in it) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, text: str, temporary: Path) -> None:
    """Write `text` to `temporary`, flush it to the disk and rename it to `path` (the directory is not flushed)."""
    with temporary.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)


def rejected_by_pg_restore(stderr: str) -> bool:
    """Return whether pg_restore itself ran and refused the archive (not docker failing to run it)."""
    return any(line.startswith(("pg_restore: error:", "pg_restore: [")) for line in stderr.splitlines())


def list_archive(config: dict[str, Any], path: Path) -> int:
    """Return the number of entries `pg_restore --list` finds in a dump.

    Raises Corrupt when pg_restore reads the archive and rejects it, Unreachable when it
    could not run (docker, its daemon or the container not answering).
    """
    try:
        with path.open("rb") as fh:
            listed = docker_exec(config, ["pg_restore", "--list"], stdin=fh, capture_output=True,
                                 timeout=docker_timeout(config))
    except OSError as exc:
        raise Unreachable(f"{path.name} cannot be read ({exc.strerror})") from exc
    if listed.returncode != 0:
        stderr = listed.stderr.decode(errors="replace")
        if listed.returncode == 1 and rejected_by_pg_restore(stderr):
            raise Corrupt(f"pg_restore --list rejects {path.name}: {first_error(stderr)}")
        raise Unreachable(f"pg_restore --list could not run in container {config['container']} "
                          f"(exit {listed.returncode}: {last_line(stderr, 'no message')})")
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
