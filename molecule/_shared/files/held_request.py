#!/usr/bin/env python3
"""Hold one request open through the edge: a session the edge must drain before a switch.

    held_request.py --token-file FILE --hold SECONDS --out FILE [--port 80]

Runs inside a lab server, against 127.0.0.1 only. It sends the headers of a POST of a
stock movement and half of its body, waits --hold seconds (gunicorn's worker, and the
edge's session on the serving slot, wait with it), sends the rest and reads the answer.
The body names no item, so the API answers 400 and writes nothing. Writes a JSON record
(atomically): when the request started and ended (epoch seconds), the answer's status (0
when the connection failed), and why it failed if it did. The token is read from a file,
never from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time

PATH = "/api/inventory/stock-movements/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--hold", type=float, required=True, help="seconds between the two halves of the body")
    parser.add_argument("--out", required=True)
    parser.add_argument("--port", type=int, default=80, help="the edge's plain HTTP port")
    args = parser.parse_args()
    with open(args.token_file, encoding="utf-8") as handle:
        token = handle.read().strip()
    body = json.dumps({"type": "IN", "qty_base": 1, "note": "held request: no item, answered 400"}).encode()
    head = (f"POST {PATH} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    record: dict = {"started_at": time.time(), "hold": args.hold, "status": 0}
    try:
        with socket.create_connection(("127.0.0.1", args.port), timeout=args.hold + 30) as conn:
            conn.sendall(head + body[: len(body) // 2])
            time.sleep(args.hold)
            conn.sendall(body[len(body) // 2:])
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
        record["status"] = int(status_line.split()[1]) if status_line.startswith("HTTP/") else 0
    except OSError as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    record["ended_at"] = time.time()
    temporary = f"{args.out}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(temporary, args.out)


if __name__ == "__main__":
    main()
