"""The settings the backup role writes for this host (backup.json): reading them, refusing incomplete ones.

Every value that the role also knows (the library folder, the safety dumps' label
suffix, restore.yml's marker file, the retention policy) comes from this file only:
a file without one of them was written by an older role, and is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from depotix_backup.errors import BackupError

# Settings the role always writes and the script has no default for.
REQUIRED_KEYS = (
    "docker", "container", "database", "user", "directory", "prefix",
    "lib_dir", "safety_suffix", "restore_marker", "keep_last", "keep_daily", "keep_weekly",
)


def missing_keys(config: dict[str, Any]) -> list[str]:
    """Return the required settings that are absent, null or empty."""
    return [key for key in REQUIRED_KEYS if config.get(key) in (None, "")]


def load_config(path: Path) -> dict[str, Any]:
    """Return the settings the backup role wrote for this host; refuse a file that lacks one it must have."""
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BackupError(f"{path} is missing: run site.yml (backup role) on this host first.") from exc
    except ValueError as exc:
        raise BackupError(f"{path} is not valid JSON ({exc}): rerun the backup role (site.yml) on this host.") from exc
    if not isinstance(config, dict):
        raise BackupError(f"{path} does not hold the backup settings: rerun the backup role (site.yml) on this host.")
    missing = missing_keys(config)
    if missing:
        raise BackupError(f"{path} has no setting {', '.join(missing)}: it was written by an older backup role; "
                          "rerun the backup role (site.yml) on this host.")
    return config
