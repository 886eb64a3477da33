#!/usr/bin/env python3
"""Bundle the backup script's library into one zip file, on the controller, printed in base64.

Run by the backup role (tasks/install.yml) before it installs the library on a host: one
file to install instead of one per module, and Python imports the package straight from
the zip (zipimport). The zip holds the depotix_backup package and release_ledger.py;
it is deterministic (sorted names, fixed times and modes), so installing it changes
nothing when the sources did not change. The zip goes to stdout, base64-encoded, for the
host_files module (one task with the script, the settings and the stamp).

    make_bundle.py FILES_DIR
"""

from __future__ import annotations

import base64
import io
import sys
import zipfile
from pathlib import Path

FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def bundle_members(files_dir: Path) -> list[tuple[str, bytes]]:
    """Return (name in the zip, content) of every module of the library, sorted by name."""
    package = files_dir / "depotix_backup"
    members = [(f"depotix_backup/{path.name}", path.read_bytes()) for path in sorted(package.glob("*.py"))]
    members.append(("release_ledger.py", (files_dir / "release_ledger.py").read_bytes()))
    return sorted(members)


def zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """Return the zip of the members, the same bytes for the same members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: make_bundle.py FILES_DIR\n")
        return 2
    sys.stdout.write(base64.b64encode(zip_bytes(bundle_members(Path(argv[0])))).decode("ascii") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
