#!/usr/bin/env python3
"""Bundle the backup script's library into one zip file, on the controller.

Run by the backup role (tasks/install.yml) before it copies the library to a host: one
file to copy instead of one per module, and Python imports the package straight from
the zip (zipimport). The zip holds the depotix_backup package and release_ledger.py;
it is deterministic (sorted names, fixed times and modes), so the copy changes nothing
when the sources did not change. Its path is printed: <dest_dir>/depotix-backup-<hash>.zip,
written under a temporary name and renamed, so parallel runs never see half a file.

    make_bundle.py FILES_DIR DEST_DIR
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
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
    files_dir, dest_dir = Path(argv[0]), Path(argv[1])
    data = zip_bytes(bundle_members(files_dir))
    dest = dest_dir / f"depotix-backup-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    if not dest.exists():
        handle, temporary = tempfile.mkstemp(dir=dest_dir, prefix=".depotix-backup-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, dest)
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
