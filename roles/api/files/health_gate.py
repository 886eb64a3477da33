#!/usr/bin/env python3
"""Health gate: wait for N consecutive HTTP 200 answers from a URL within T seconds.

Prints one JSON document: ok, consecutive, attempts, elapsed seconds, the last status
and, on failure, a reason. Exits 0 when the gate passed, 1 when it did not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def probe(url: str, timeout: float) -> tuple[int, str]:
    """Return (HTTP status, detail) of one GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - URL from the role
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.reason or ""
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(getattr(exc, "reason", exc))


def gate(url: str, successes: int, timeout: float, interval: float) -> dict:
    """Poll until `successes` consecutive 200s, or until `timeout` seconds have passed."""
    start = time.monotonic()
    consecutive = attempts = 0
    status, detail = 0, "no attempt"
    while True:
        attempts += 1
        status, detail = probe(url, timeout=min(5.0, max(timeout, 1.0)))
        consecutive = consecutive + 1 if status == 200 else 0
        elapsed = time.monotonic() - start
        if consecutive >= successes:
            return {"ok": True, "consecutive": consecutive, "attempts": attempts,
                    "elapsed": round(elapsed, 2), "status": status}
        if elapsed + interval > timeout:
            reason = f"last answer {status} {detail}".strip() if status else f"no answer ({detail})"
            return {"ok": False, "consecutive": consecutive, "attempts": attempts,
                    "elapsed": round(elapsed, 2), "status": status, "reason": reason}
        time.sleep(interval)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--successes", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--interval", type=float, default=1)
    args = parser.parse_args(argv)
    result = gate(args.url, args.successes, args.timeout, args.interval)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
