#!/usr/bin/env python3
"""Verified PostgreSQL backups of the Depotix database, through its container.

The command every caller runs (/usr/local/sbin/depotix-backup on the host). The work
is done by the depotix_backup package, which the backup role installs, zipped with
release_ledger.py, as depotix_backup.zip in the settings' lib_dir (backup_lib_dir); in
the repository both are found beside this file. `depotix-backup --help` lists the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# The settings the backup role writes (backup_config_dir); --config names another file.
CONFIG_FILE = Path("/etc/depotix/backup.json")


def config_path(argv: list[str]) -> Path:
    """Return the settings file the command line names with --config, or the default one."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--config", type=Path, default=CONFIG_FILE)
    try:
        return parser.parse_known_args(argv)[0].config
    except argparse.ArgumentError:
        return CONFIG_FILE  # the package's own parser says what is wrong


def library_dirs(config_file: Path) -> list[str]:
    """Return where the package is looked for: the settings' lib_dir, then the folder beside this script."""
    beside = os.path.dirname(os.path.realpath(__file__))
    try:
        settings = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return [beside]  # the package refuses the settings file, saying why
    lib_dir = settings.get("lib_dir") if isinstance(settings, dict) else None
    # The role installs the library as one zip (package and ledger rules) in lib_dir.
    return [os.path.join(str(lib_dir), "depotix_backup.zip"), str(lib_dir), beside] if lib_dir else [beside]


def main(argv: list[str]) -> int:
    """Find the package, then run the command line with it."""
    config_file = config_path(argv)
    folders = library_dirs(config_file)
    sys.path[:0] = folders
    try:
        from depotix_backup.cli import main as run
    except ImportError as exc:
        print(f"depotix-backup: cannot load the depotix_backup package from {' or '.join(folders)} ({exc}): "
              "rerun the backup role (site.yml) on this host.", file=sys.stderr)
        return 1
    return run(argv, CONFIG_FILE)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
