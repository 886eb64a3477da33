#!/usr/bin/env python3
"""Spoil the next dump that appears in the backup directory, once it is complete and verified.

Run inside the lab server before a deploy: it waits for a dump that was not there when it
started and whose .json record exists (the backup script writes the record last, after
checking the dump), then flips one byte near its end, so that a later restore of that
dump fails its checksum. It writes what it did to --out as JSON: {"spoiled": file name or
null, "at": epoch seconds}. Standard library only: it runs with the server's python3.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def flip_a_byte(path: Path, offset: int = -100) -> None:
    """Invert the lowest bit of one byte of the file, in place."""
    with path.open("r+b") as handle:
        handle.seek(offset, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(offset, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0x01]))
        handle.flush()
        os.fsync(handle.fileno())


def complete_new_dumps(directory: Path, known: set[str]) -> list[Path]:
    """Return the dumps not in `known` whose record is written, oldest name first."""
    return sorted(p for p in directory.glob("*.dump") if p.name not in known and Path(f"{p}.json").exists())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    known = {p.name for p in args.directory.glob("*.dump")}
    deadline = time.monotonic() + args.max_seconds
    spoiled = None
    while time.monotonic() < deadline and spoiled is None:
        found = complete_new_dumps(args.directory, known)
        if found:
            flip_a_byte(found[0])
            spoiled = found[0].name
        else:
            time.sleep(0.1)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({"spoiled": spoiled, "at": time.time()}, handle)
    return 0 if spoiled else 1


if __name__ == "__main__":
    raise SystemExit(main())
