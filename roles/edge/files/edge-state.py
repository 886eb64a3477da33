#!/usr/bin/env python3
"""Save HAProxy's server states (`show servers state`) to a file, atomically.

    depotix-edge-state SOCKET FILE

Run before a reload: the new workers read FILE (server-state-file,
load-server-state-from-file), so a server that was drained or disabled through the
runtime socket stays so. Exits non-zero, saying why, when the socket does not answer.
"""

from __future__ import annotations

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


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: depotix-edge-state SOCKET FILE\n")
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
