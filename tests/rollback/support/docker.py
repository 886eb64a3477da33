#!/usr/bin/env python3
"""A stand-in for the docker CLI that knows one command: `docker exec CONTAINER CMD...` runs CMD here.

The postgres role's query entry point runs `docker exec <db container> psql ...`; with this
first on PATH (as `docker`) that psql reaches the test database named by the PG* variables
of the environment.
"""

from __future__ import annotations

import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "exec" or argv[1].startswith("-"):
        sys.stderr.write(f"docker stand-in: only `exec CONTAINER CMD...` is known, not {argv}\n")
        return 125
    return subprocess.run(argv[2:], check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
