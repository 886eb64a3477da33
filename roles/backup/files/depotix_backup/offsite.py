"""The offsite copy of a dump and its sidecars, with the configured command or rsync target."""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

from depotix_backup.database import last_line
from depotix_backup.errors import BackupError
from depotix_backup.names import dump_path, resolve_dump, sidecars


def offsite_argv(config: dict[str, Any], files: list[str]) -> list[str] | None:
    """Return the command that copies a dump's files offsite, or None when no copy is configured.

    `offsite_command` is run without a shell, with the dump, its .sha256 and its .json
    appended; `offsite_rsync_target` is an rsync destination (host:path/ or a directory).
    """
    if config.get("offsite_command"):
        return shlex.split(config["offsite_command"]) + files
    if config.get("offsite_rsync_target"):
        return ["rsync", "-a", "--chmod=F600", *files, config["offsite_rsync_target"]]
    return None


def cmd_offsite(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Copy a dump with its .sha256 and .json offsite, with the configured command."""
    path = dump_path(config, resolve_dump(config, name))
    files = [str(path), *(str(p) for p in sidecars(path))]
    argv = offsite_argv(config, files)
    if argv is None:
        return {"changed": False, "skipped": True, "file": path.name}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=int(config.get("offsite_timeout", 3600)))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"the offsite copy of {path.name} could not run ({exc}); the dump is kept here, "
                          "verified.") from exc
    if done.returncode != 0:
        raise BackupError(f"the offsite copy of {path.name} failed (exit {done.returncode}: "
                          f"{last_line(done.stderr or done.stdout, 'no message')}); the dump is kept here, verified.")
    return {"changed": True, "skipped": False, "file": path.name, "command": argv[0]}
