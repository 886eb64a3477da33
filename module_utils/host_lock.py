"""The host lock: one run that changes a Depotix host at a time, recorded in a file on the host.

The lock is a small JSON file (``/var/lib/depotix/run.lock`` by default) naming the run
that holds it: its ``run_id``, who started it, the playbook and the arguments that matter,
since when, and the controller and ansible-playbook process it runs in. The run that holds
it is the only one that changes the host; the entry playbooks take it first and give it
back at the end (the host_lock role).

What makes it a lock: the file appears complete or not at all, and only if it did not
exist (written to a temporary file, then ``os.link`` to the lock's name, which fails when
the name exists). Breaking a stale lock and releasing one read the file and change it
under an ``flock`` of the lock's directory, so two runs cannot both break the same stale
lock and then both believe they hold it. The flock lasts one module call; the file lasts
the whole run.

The host_lock module calls these functions; whether a holder's run is still going is
judged on the controller (the role's action plugin), which alone can see its process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
from typing import Any, Dict, Iterator, Optional

Holder = Dict[str, Any]


class LockHeld(Exception):
    """The lock is held by another run; ``holder`` says which."""

    def __init__(self, holder: Holder) -> None:
        super().__init__(holder.get("run_id"))
        self.holder = holder


def read_holder(path: str) -> Optional[Holder]:
    """Return the record in the lock file, None when there is no lock.

    A file that is not a lock record (emptied by hand, cut off by a full disk) is still a
    lock: its holder is named after the file's content, so only that very content can be
    broken.
    """
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(content.decode("utf-8"))
    except ValueError:
        holder = None
    if isinstance(holder, dict) and isinstance(holder.get("run_id"), str) and holder["run_id"]:
        return holder
    digest = hashlib.sha256(content).hexdigest()[:16]
    return {"run_id": "unreadable-%s" % digest, "unreadable": "%s does not hold a lock record" % path}


@contextlib.contextmanager
def guarded(directory: str) -> Iterator[None]:
    """Hold an exclusive flock on ``directory`` while reading and changing the lock file in it."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def fsync_directory(directory: str) -> None:
    """Make a rename, link or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _written_temporary(directory: str, holder: Holder) -> str:
    """Return the path of a complete, fsynced temporary file in ``directory`` holding ``holder``."""
    fd, tmp = tempfile.mkstemp(prefix=".run.lock.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(holder, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def create(path: str, holder: Holder) -> None:
    """Create the lock file holding ``holder``; raise LockHeld naming the holder when it exists."""
    directory = os.path.dirname(path) or "."
    tmp = _written_temporary(directory, holder)
    try:
        os.link(tmp, path)
    except OSError as error:
        if error.errno != errno.EEXIST:
            raise
        raise LockHeld(read_holder(path) or {"run_id": "unknown"}) from None
    finally:
        os.unlink(tmp)
    fsync_directory(directory)


def replace(path: str, holder: Holder) -> None:
    """Replace the lock file by one holding ``holder`` (the caller holds ``guarded``)."""
    directory = os.path.dirname(path) or "."
    tmp = _written_temporary(directory, holder)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_directory(directory)


def acquire(path: str, holder: Holder, break_run: str = "", check_mode: bool = False) -> Dict[str, Any]:
    """Take the lock for ``holder`` (its ``run_id``); return what happened.

    Held by the same run: nothing to do. Held by the run ``break_run`` names: that lock is
    replaced (and returned as ``broken``). Held by any other run: LockHeld. In check mode
    nothing is written; the result says what would have been.
    """
    directory = os.path.dirname(path) or "."
    with guarded(directory):
        current = read_holder(path)
        if current is not None and current.get("run_id") == holder["run_id"]:
            return {"changed": False, "acquired": True, "holder": current, "broken": None}
        if current is not None and (not break_run or current.get("run_id") != break_run):
            raise LockHeld(current)
        if not check_mode:
            if current is None:
                create(path, holder)
            else:
                replace(path, holder)
        return {"changed": True, "acquired": True, "holder": holder, "broken": current}


def release(path: str, run_id: str, check_mode: bool = False) -> Dict[str, Any]:
    """Remove the lock if the run ``run_id`` holds it; leave any other run's lock alone."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        return {"changed": False, "released": False, "holder": None}
    with guarded(directory):
        current = read_holder(path)
        if current is None or current.get("run_id") != run_id:
            return {"changed": False, "released": False, "holder": current}
        if not check_mode:
            os.unlink(path)
            fsync_directory(directory)
        return {"changed": True, "released": True, "holder": None}
