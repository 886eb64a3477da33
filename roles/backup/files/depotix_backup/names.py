"""Dump file names and the dumps of the backup directory: naming, parsing, listing, `latest`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from depotix_backup.errors import BackupError

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclasses.dataclass(frozen=True)
class Dump:
    """A dump file in the backup directory, as its name and sidecar files describe it."""

    name: str
    time: dt.datetime
    label: str
    good: bool  # its .sha256 is beside it (written before the dump got its final name)


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
