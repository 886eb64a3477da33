"""Files of the backup directory: checksums, durable writes, removal, free space, archive listing, the lock."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
import threading
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


def judge_listing(config: dict[str, Any], name: str, returncode: int, stdout: bytes, stderr_bytes: bytes) -> int:
    """Return the entries of a finished `pg_restore --list`; raise Corrupt or Unreachable when it failed."""
    if returncode != 0:
        stderr = stderr_bytes.decode(errors="replace")
        if returncode == 1 and rejected_by_pg_restore(stderr):
            raise Corrupt(f"pg_restore --list rejects {name}: {first_error(stderr)}")
        raise Unreachable(f"pg_restore --list could not run in container {config['container']} "
                          f"(exit {returncode}: {last_line(stderr, 'no message')})")
    return sum(1 for line in stdout.decode(errors="replace").splitlines() if line and not line.startswith(";"))


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
    return judge_listing(config, path.name, listed.returncode, listed.stdout, listed.stderr)


class Lister:
    """`pg_restore --list` started ahead (its `docker exec` starts while pg_dump runs), fed a dump once written.

    pg_restore reads the archive's header and table of contents, lists them and exits:
    the same check as list_archive, without a `docker exec` start after the dump.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.output = tempfile.TemporaryFile()
        self.errors = tempfile.TemporaryFile()
        argv = [config["docker"], "exec", "-i", config["container"], "pg_restore", "--list"]
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self.output, stderr=self.errors)
        except OSError as exc:
            raise Unreachable(f"the docker CLI {config['docker']} cannot run ({exc.strerror})") from exc

    def entries(self, path: Path) -> int:
        """Feed `path` to pg_restore (until it has read what it needs); return list_archive's answer."""
        unreadable: list[str] = []

        def feed() -> None:
            assert self.process.stdin
            try:
                with path.open("rb") as fh:
                    while chunk := fh.read(CHUNK):
                        self.process.stdin.write(chunk)
                self.process.stdin.close()
            except BrokenPipeError:
                pass  # pg_restore has read the table of contents and exited
            except OSError as exc:
                unreadable.append(exc.strerror or str(exc))

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            returncode = self.process.wait(timeout=docker_timeout(self.config))
        except subprocess.TimeoutExpired as exc:
            self.close()
            raise Unreachable(f"docker exec pg_restore in container {self.config['container']} did not answer "
                              f"within {docker_timeout(self.config):g} s (backup_docker_timeout): check the "
                              "Docker daemon (systemctl status docker)") from exc
        feeder.join()
        if unreadable:
            raise Unreachable(f"{path.name} cannot be read ({unreadable[0]})")
        self.output.seek(0)
        self.errors.seek(0)
        return judge_listing(self.config, path.name, returncode, self.output.read(), self.errors.read())

    def close(self) -> None:
        """Stop pg_restore if it still runs; drop its output."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.output, self.errors):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass


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
