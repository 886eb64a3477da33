#!/usr/bin/env python3
"""Post stock movements to the API at a steady rate while a change runs, then count what was kept.

`stock_writer.py write` runs inside a lab server: it posts one IN movement of one unit to
http://127.0.0.1:<port>/api/inventory/stock-movements/ (or a peer named by --peer) every
1/--rate seconds, each with the note `writer:<name>:<n>`, so that every movement can be
found afterwards. It stops at the stop file, after --max-seconds or after --max-count
ticks, whichever comes first. Requests run on a small thread pool with a short timeout,
so the rate holds while the API is down (refused, failing fast). At most --max-in-flight
requests wait for an answer at once: a tick that finds them all waiting is skipped and
counted, not queued. A writer that kept sending into a slow API would fill gunicorn's
queue with requests whose clients have given up (they still commit, late), until every
request times out and /healthz itself waits behind them: it would measure its own
overload, not the change under test. The token is read from a file, never taken from
the command line. The JSON summary (written atomically) holds the figures: sent,
acknowledged (2xx), failed by status or error, skipped, the acknowledged notes in order,
a per-second timeline and the rate achieved.

`stock_writer.py check` reads that summary and the notes found in the database (one per
line on stdin) and writes the verdict: every acknowledged movement must be there.

Standard library only: it runs with the lab server's own python3.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

MOVEMENTS_PATH = "/api/inventory/stock-movements/"
NOTE_PREFIX = "writer:"


def note_of(name: str, number: int) -> str:
    """Return the note that identifies the writer's movement `number` in the database."""
    return f"{NOTE_PREFIX}{name}:{number}"


def read_token(path: str) -> str:
    """Return the API token stored in a file that only its owner can read."""
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        raise SystemExit(f"stock_writer: {path} has mode {mode:o}; keep the token file at 0600")
    with open(path, encoding="utf-8") as handle:
        token = handle.read().strip()
    if not token:
        raise SystemExit(f"stock_writer: {path} holds no token")
    return token


class Tally:
    """What the writer saw, updated from the request threads under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.skipped = 0
        self.acknowledged: list[tuple[int, str]] = []
        self.failed: Counter[str] = Counter()
        self.timeline: dict[int, list[int]] = {}
        self.first_ack: float | None = None
        self.last_ack: float | None = None
        self.latencies: list[float] = []

    def skip(self) -> None:
        """Record a tick skipped because every request allowed in flight still waits for its answer."""
        with self.lock:
            self.skipped += 1
            self.timeline.setdefault(int(time.time()), [0, 0, 0])[2] += 1

    def record(self, number: int, note: str, outcome: str | None, seconds: float = 0.0) -> None:
        """Record one answer: outcome None for a 2xx, else the status or error that failed it;
        seconds: how long the request took, answer or not."""
        now = time.time()
        with self.lock:
            self.latencies.append(seconds)
            second = self.timeline.setdefault(int(now), [0, 0, 0])
            if outcome is None:
                self.acknowledged.append((number, note))
                self.first_ack = now if self.first_ack is None else self.first_ack
                self.last_ack = now
                second[0] += 1
            else:
                self.failed[outcome] += 1
                second[1] += 1


def outcome_of(opener: urllib.request.OpenerDirector, request: urllib.request.Request, timeout: float) -> str | None:
    """Send one request; return None when it was acknowledged (2xx), else why it failed."""
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read()
            return None if 200 <= response.status < 300 else str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return "timeout"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        return type(reason).__name__ if isinstance(reason, OSError) else str(reason)
    except TimeoutError:
        return "timeout"
    except (OSError, http.client.HTTPException) as exc:  # reset, closed early, a garbled answer
        return type(exc).__name__


def movement_request(url: str, token: str, item: int, note: str) -> urllib.request.Request:
    body = json.dumps({"item": item, "type": "IN", "qty_base": 1, "note": note}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - loopback or peer


def write_json(path: str, document: dict) -> None:
    """Write a JSON document atomically, so that a reader waiting for the file never sees half of it."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
        handle.write("\n")
    os.replace(temporary, path)


def latency_figures(seconds: list[float]) -> dict:
    """Return the median, the 99th percentile (nearest rank) and the worst, in milliseconds."""
    if not seconds:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(seconds)

    def rank(share: float) -> float:
        return round(ordered[max(0, math.ceil(share * len(ordered)) - 1)] * 1000, 1)
    return {"p50": rank(0.5), "p99": rank(0.99), "max": round(ordered[-1] * 1000, 1)}


def write(args: argparse.Namespace) -> None:
    token = read_token(args.token_file)
    url = f"http://{args.peer or '127.0.0.1'}:{args.port}{MOVEMENTS_PATH}"
    # No proxy, whatever the environment says: the writer talks to the API directly.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    tally = Tally()
    interval = 1.0 / args.rate
    in_flight = threading.BoundedSemaphore(args.max_in_flight)

    def post(number: int) -> None:
        note = note_of(args.name, number)
        try:
            begun = time.monotonic()
            outcome = outcome_of(opener, movement_request(url, token, args.item, note), args.timeout)
            tally.record(number, note, outcome, time.monotonic() - begun)
        finally:
            in_flight.release()

    started, started_wall = time.monotonic(), time.time()
    stopped_by = "max-count"
    with ThreadPoolExecutor(max_workers=args.max_in_flight) as pool:
        for number in range(1, args.max_count + 1):
            if os.path.exists(args.stop_file):
                stopped_by = "stop file"
                break
            if time.monotonic() - started >= args.max_seconds:
                stopped_by = "max-seconds"
                break
            if in_flight.acquire(blocking=False):
                pool.submit(post, number)
                tally.sent += 1
            else:
                tally.skip()
            time.sleep(max(0.0, started + number * interval - time.monotonic()))
        # The rate is the sending's; leaving the block waits for the requests still in flight.
        sending = time.monotonic() - started
    acknowledged = sorted(tally.acknowledged)
    write_json(args.out, {
        "name": args.name,
        "url": url,
        "item": args.item,
        "rate_asked": args.rate,
        "rate_achieved": round(tally.sent / sending, 2) if sending else 0.0,
        "seconds": round(sending, 1),
        "started_at": round(started_wall, 3),
        "finished_at": round(time.time(), 3),
        "stopped_by": stopped_by,
        "sent": tally.sent,
        "acknowledged": len(acknowledged),
        "failed": sum(tally.failed.values()),
        "failed_by": dict(sorted(tally.failed.items())),
        "skipped": tally.skipped,
        "max_in_flight": args.max_in_flight,
        "first_acknowledged_at": tally.first_ack,
        "last_acknowledged_at": tally.last_ack,
        # Milliseconds per request (every answer, and every failure's wait): median, 99th percentile, worst.
        "latency_ms": latency_figures(tally.latencies),
        # Per second: [acknowledged, failed, skipped].
        "timeline": {str(second): counts for second, counts in sorted(tally.timeline.items())},
        "acknowledged_ids": [note for _, note in acknowledged],
    })


def verdict(summary: dict, found_notes: list[str]) -> dict:
    """Return the check of a summary against the writer's notes found in the database."""
    found = Counter(note for note in found_notes if note)
    acknowledged = summary["acknowledged_ids"]
    lost = [note for note in acknowledged if note not in found]
    acknowledged_set = set(acknowledged)
    return {
        "name": summary["name"],
        "sent": summary["sent"],
        "acknowledged": summary["acknowledged"],
        "failed": summary["failed"],
        "failed_by": summary["failed_by"],
        "skipped": summary["skipped"],
        "lost": len(lost),
        "lost_ids": lost,
        "found_in_database": sum(found[note] for note in acknowledged_set),
        # A request that timed out may still have been committed: kept, but never acknowledged.
        "found_unacknowledged": sum(n for note, n in found.items() if note not in acknowledged_set),
        "duplicated_ids": sorted(note for note, n in found.items() if n > 1),
        "rate_achieved": summary["rate_achieved"],
        "seconds": summary["seconds"],
    }


def one_line(check: dict) -> str:
    """Return the check's figures as one line for a scenario's log."""
    failed = ", ".join(f"{why}: {n}" for why, n in check["failed_by"].items()) or "none"
    return (f"writer {check['name']}: sent {check['sent']}, acknowledged {check['acknowledged']}, "
            f"failed {check['failed']} ({failed}), skipped {check['skipped']}, lost {check['lost']}, found in database "
            f"{check['found_in_database']} (+{check['found_unacknowledged']} never acknowledged), "
            f"{check['rate_achieved']}/s over {check['seconds']} s")


def check(args: argparse.Namespace) -> None:
    with open(args.summary, encoding="utf-8") as handle:
        summary = json.load(handle)
    result = verdict(summary, [line.strip() for line in sys.stdin])
    write_json(args.out, result)
    print(one_line(result))


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    writer = commands.add_parser("write", help="post movements until stopped, then write the summary")
    writer.add_argument("--name", required=True, help="the writer's name, part of every note")
    writer.add_argument("--item", type=int, required=True, help="id of the inventory item the movements add to")
    writer.add_argument("--token-file", required=True, help="file (mode 0600) holding the API token")
    writer.add_argument("--stop-file", required=True)
    writer.add_argument("--out", required=True, help="where the JSON summary goes")
    writer.add_argument("--rate", type=float, default=20.0, help="posts per second")
    writer.add_argument("--max-seconds", type=float, default=600.0)
    writer.add_argument("--max-count", type=int, default=12000)
    writer.add_argument("--timeout", type=float, default=5.0, help="seconds one request may take")
    writer.add_argument("--max-in-flight", type=int, default=4, help="requests waiting for an answer at once")
    writer.add_argument("--port", type=int, default=80, help="the edge's plain HTTP port")
    writer.add_argument("--peer", help="another lab server (by name) instead of 127.0.0.1")
    checker = commands.add_parser("check", help="compare a summary with the notes found (stdin)")
    checker.add_argument("--summary", required=True)
    checker.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "write" and not (args.rate > 0 and args.timeout > 0 and args.max_count > 0
                                        and args.max_in_flight > 0):
        parser.error("--rate, --timeout, --max-count and --max-in-flight must be positive")
    return args


def main() -> None:
    args = arguments()
    (write if args.command == "write" else check)(args)


if __name__ == "__main__":
    main()
