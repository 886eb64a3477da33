"""The release ledger: the JSON file on a host recording every deploy, rollback and failed attempt.

The file holds an object with an ``entries`` list (a bare list is read too),
oldest first, one entry per deploy, rollback or failed attempt::

    {"release": "2.0", "image": "depotix-lab/api:2.0", "image_id": "sha256:...",
     "leaves": {"inventory": ["0008_add_idempotency_and_constraints"]},
     "action": "deploy", "outcome": "ok", "note": "", "time": "2026-01-01T02:00:00+00:00"}

The release_ledger module reads and appends to it; the django_migration module
reads it to name the image that contains ghost migrations. Both read it through
``load_entries`` here. Which release runs now and which one a rollback goes
back to follows from the entries alone (``release_stack``), never from file times.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from typing import Any, Dict, List, Optional

Entry = Dict[str, Any]


class LedgerError(Exception):
    """The ledger cannot be read or has an unexpected shape."""


def load_entries(path: str) -> List[Entry]:
    """Return the ledger's entries, oldest first; a missing file is an empty ledger (nothing deployed yet)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        raise LedgerError("ledger %s cannot be read: %s" % (path, error)) from None
    entries = data.get("entries") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise LedgerError("ledger %s is neither a list of entries nor an object with an entries list" % path)
    return entries


def release_stack(entries: List[Entry]) -> List[Entry]:
    """Return the good entries in force, oldest first: deploys push, rollbacks pop back.

    Failed entries are ignored. A rollback to a release pops everything above
    it, so after 1.0, 2.0, 2.1 and a rollback to 2.0 the stack is 1.0, 2.0:
    the release before 2.0 is 1.0, never 2.1.
    """
    stack: List[Entry] = []
    for entry in entries:
        if entry.get("outcome") != "ok":
            continue
        if entry.get("action") == "rollback":
            while stack and stack[-1].get("release") != entry.get("release"):
                stack.pop()
            if stack:
                stack[-1] = entry
                continue
        if stack and stack[-1].get("release") == entry.get("release"):
            stack[-1] = entry
        else:
            stack.append(entry)
    return stack


def ledger_summary(entries: List[Entry]) -> Dict[str, Any]:
    """Return the entries, the current release's entry, the previous good one and the releases in force."""
    stack = release_stack(entries)
    return {
        "entries": entries,
        "current": stack[-1] if stack else None,
        "previous": stack[-2] if len(stack) > 1 else None,
        "history": [entry.get("release") for entry in stack],
    }


def repeats_current(entries: List[Entry], entry: Entry) -> bool:
    """Return True when ``entry`` would only record again the release running now, with the same image."""
    current = ledger_summary(entries)["current"]
    return bool(
        current
        and entry.get("outcome") == "ok"
        and current.get("release") == entry.get("release")
        and current.get("image_id") == entry.get("image_id")
    )


def new_entry(
    release: str,
    image: Optional[str] = None,
    image_id: Optional[str] = None,
    leaves: Optional[Dict[str, List[str]]] = None,
    action: str = "deploy",
    outcome: str = "ok",
    note: str = "",
    now: Optional[dt.datetime] = None,
) -> Entry:
    """Return a ledger entry, stamped with ``now`` (the current UTC time by default)."""
    stamp = now or dt.datetime.now(dt.timezone.utc)
    return {
        "release": release,
        "image": image,
        "image_id": image_id,
        "leaves": leaves or {},
        "action": action,
        "outcome": outcome,
        "note": note,
        "time": stamp.isoformat(timespec="seconds"),
    }


def write_entries(path: str, entries: List[Entry], mode: str) -> None:
    """Write the ledger atomically: a temporary file next to it, fsynced, then a rename, so no reader sees half a file.

    The directory is fsynced after the rename, so that after a crash the ledger is the old
    one or the new one, whole. Plays write it under the host lock (roles/host_lock), so no
    two writers read, append and rename at once.
    """
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".releases.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"entries": entries}, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, int(mode, 8))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
