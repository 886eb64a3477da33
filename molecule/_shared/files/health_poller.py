#!/usr/bin/env python3
"""Poll http://127.0.0.1:<port>/healthz (default: the edge, 80) ten times a second until a stop file appears.

Bounded in count and time (at most --max-seconds), local only. A request that gets no
answer within --timeout seconds (default 5, the stock writer's bound) counts as status 0,
as does a failed connection. Writes a JSON summary: samples, non-200 samples, the
statuses seen, and the seconds the API answered anything but 200.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.request


def status_of(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-seconds", type=float, default=600)
    # A slow answer is not a failed one: the same bound as the stock writer's.
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds one request may take")
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}/healthz"
    interval, start, samples, bad, statuses = 0.1, time.monotonic(), 0, 0, {}
    while not os.path.exists(args.stop_file) and time.monotonic() - start < args.max_seconds:
        tick = time.monotonic()
        status = status_of(url, args.timeout)
        samples += 1
        bad += status != 200
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        time.sleep(max(0.0, interval - (time.monotonic() - tick)))
    elapsed = time.monotonic() - start
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump({"samples": samples, "non_200_samples": bad, "statuses": statuses,
                   "seconds": round(elapsed, 1), "non_200_seconds": round(bad * elapsed / max(samples, 1), 1)}, fh)


if __name__ == "__main__":
    main()
