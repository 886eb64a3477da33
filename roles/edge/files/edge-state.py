#!/usr/bin/env python3
"""Save HAProxy's server states to a file, or print a backend's servers, read-only.

    depotix-edge-state SOCKET FILE
    depotix-edge-state --servers SOCKET BACKEND

The first form runs before a reload: it writes `show servers state` to FILE, atomically;
the new workers read FILE (server-state-file, load-server-state-from-file), so a server
that was drained or disabled through the runtime socket stays so. The second prints the
BACKEND's servers as JSON, from `show stat`: {"servers": {name: {"status": "UP",
"sessions": 0}}}; the api role reads it before a switch. Both exit non-zero, saying why,
when the socket does not answer; the second also when the backend is unknown.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sys


def ask(path: str, command: str, timeout: float = 10.0) -> str:
    """Send one command to HAProxy's runtime socket; return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(path)
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def servers(sock: str, backend: str) -> int:
    """Print BACKEND's servers (status, current sessions) as JSON."""
    try:
        stat = ask(sock, "show stat")
    except OSError as exc:
        sys.stderr.write(f"the edge's runtime socket {sock} does not answer ({exc}): is the edge running?\n")
        return 1
    rows = csv.DictReader(stat.lstrip("# ").splitlines())
    found = {row["svname"]: {"status": row["status"], "sessions": int(row["scur"] or 0)}
             for row in rows if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")}
    if not found:
        sys.stderr.write(f"the edge has no backend {backend!r} with servers\n")
        return 1
    print(json.dumps({"servers": found}, sort_keys=True))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--servers"] and len(argv) == 3:
        return servers(argv[1], argv[2])
    if len(argv) != 2 or argv[0].startswith("-"):
        sys.stderr.write("usage: depotix-edge-state SOCKET FILE | depotix-edge-state --servers SOCKET BACKEND\n")
        return 2
    sock, target = argv
    try:
        states = ask(sock, "show servers state")
    except OSError as exc:
        sys.stderr.write(f"the edge's runtime socket {sock} does not answer ({exc}): is the edge running?\n")
        return 1
    if not states.startswith("1\n"):  # the state file format's version line
        sys.stderr.write(f"unexpected answer from {sock}: {states[:200]!r}\n")
        return 1
    temporary = f"{target}.tmp"
    with open(temporary, "w", encoding="utf-8") as fh:
        fh.write(states)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
