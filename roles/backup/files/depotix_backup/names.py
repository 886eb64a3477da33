"""Dump file names and the dumps of the backup directory: naming, parsing, records, order, `latest`.

Dumps are ordered by the sequence number in their record (one more than the highest in
the directory when the dump was taken, under the directory's lock), not by the time in
their name: a clock set back or ahead never makes an older dump the newest. Dumps whose
record has no sequence (taken by an older script) come before every sequenced one, in
the order of their time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from depotix_backup.errors import BackupError

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# What a record must hold to be complete; older scripts' records have these too.
RECORD_KEYS = ("sha256", "created", "tables", "rows", "migrations")


@dataclasses.dataclass(frozen=True)
class Dump:
    """A dump file in the backup directory, as its name and sidecar files describe it."""

    name: str
    time: dt.datetime
    label: str
    good: bool  # complete: its .sha256 and a complete .json record are beside it
    sequence: int | None = None  # from its record; None for an older script's dump
    problem: str | None = None  # why it is not complete


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


def temporary(path: Path) -> Path:
    """Return the name a file of the backup directory is written under before it is renamed into place."""
    return path.with_name(f".{path.name}.partial")


def load_record(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """Return (record, None) when the .json beside a dump is complete, else (None, what is wrong with it)."""
    record_file = sidecars(path)[1]
    try:
        record = json.loads(record_file.read_text())
    except FileNotFoundError:
        return None, f"{record_file.name} is missing"
    except OSError as exc:
        return None, f"{record_file.name} cannot be read ({exc.strerror})"
    except ValueError:
        return None, f"{record_file.name} is torn (not valid JSON)"
    if not isinstance(record, dict):
        return None, f"{record_file.name} is torn (not a record)"
    missing = [key for key in RECORD_KEYS if key not in record]
    sequence = record.get("sequence")
    if missing or not isinstance(record.get("tables"), dict):
        return None, f"{record_file.name} is torn (no {', '.join(missing) or 'tables'})"
    if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool)):
        return None, f"{record_file.name} is torn (sequence {sequence!r})"
    return record, None


def order_key(dump: Dump) -> tuple:
    """Sort key, oldest first: unsequenced dumps by time, then sequenced ones by sequence."""
    if dump.sequence is None:
        return (0, dump.time, dump.name)
    return (1, dump.sequence, dump.time, dump.name)


def describe(config: dict[str, Any], path: Path) -> Dump | None:
    """Return what a file of the backup directory is, as a dump; None when it is no dump."""
    parsed = parse_dump_name(config["prefix"], path.name)
    if not parsed or not path.is_file():
        return None
    record, problem = load_record(path)
    if not sidecars(path)[0].is_file():
        problem = f"{sidecars(path)[0].name} is missing"
    sequence = record.get("sequence") if record else None
    return Dump(path.name, parsed[0], parsed[1], problem is None, sequence, problem)


def list_dumps(config: dict[str, Any]) -> list[Dump]:
    """Return the dumps of the backup directory, oldest first (by sequence; see the module's doc)."""
    found = [describe(config, path) for path in Path(config["directory"]).iterdir()]
    return sorted((d for d in found if d), key=order_key)


def next_sequence(config: dict[str, Any]) -> int:
    """Return the sequence number of the next dump: one more than the highest recorded in the directory."""
    return max((d.sequence for d in list_dumps(config) if d.sequence is not None), default=0) + 1


def in_future(dumps: list[Dump], now: dt.datetime) -> list[str]:
    """Return the names of the dumps whose time lies after `now` (taken while the clock was ahead)."""
    return [d.name for d in dumps if d.time > now]


def resolve_dump(config: dict[str, Any], name: str) -> str:
    """Return the file name of a dump; `latest` is the newest complete dump that is not a restore's safety dump.

    Safety dumps are those whose label ends with the settings' safety_suffix (the role's backup_safety_suffix).
    """
    if name != "latest":
        return name
    suffix = config["safety_suffix"]
    candidates = [d for d in list_dumps(config) if d.good and not d.label.endswith(suffix)]
    if not candidates:
        raise BackupError(f"there is no complete dump in {config['directory']} (restore safety dumps aside): "
                          "take one with 'depotix-backup dump', or name a file.")
    return candidates[-1].name
