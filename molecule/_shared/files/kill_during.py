#!/usr/bin/env python3
"""Run a command, and kill it (SIGKILL, its whole process group) once a line matches.

    kill_during.py --log FILE --at REGEX [--delay S] [--timeout S] -- COMMAND...

What an operator's dropped connection or a Ctrl-\\ does to ansible-playbook, at a task
the test chooses: the command's output goes to FILE as it comes; when a line matches
REGEX (e.g. the TASK banner of the step to interrupt), it waits --delay seconds and
kills the process group, then appends a "kill_during: killed ..." line to FILE.

Exit status: 0 when the command was killed as asked; 1 when it ended (or timed out)
before the line appeared, which means the test did not interrupt anything and must fail.
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import signal
import subprocess
import sys
import time


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="file that receives the command's output")
    parser.add_argument("--at", required=True, help="regular expression of the line to kill at")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between the line and the kill")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up (and fail) after this many seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command given after --")
    return args


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    pattern = re.compile(args.at)
    deadline = time.monotonic() + args.timeout
    with open(args.log, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(args.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        assert proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        kill_at: float | None = None
        matched = ""
        while True:
            now = time.monotonic()
            if kill_at is not None and now >= kill_at:
                kill_group(proc)
                log.write(f"\nkill_during: killed the run {args.delay:g}s after: {matched}\n")
                print(f"killed {args.delay:g}s after: {matched}")
                return 0
            if now >= deadline:
                kill_group(proc)
                log.write(f"\nkill_during: gave up after {args.timeout:g}s, no line matched {args.at!r}\n")
                print(f"no line matched {args.at!r} within {args.timeout:g}s", file=sys.stderr)
                return 1
            wait = min(0.2, (kill_at - now) if kill_at is not None else 0.2)
            if not selector.select(timeout=wait):
                continue
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                when = "before the kill" if kill_at is not None else f"before a line matched {args.at!r}"
                log.write(f"\nkill_during: the run ended (rc {proc.returncode}) {when}\n")
                print(f"the run ended (rc {proc.returncode}) {when}", file=sys.stderr)
                return 1
            text = line.decode("utf-8", "replace")
            log.write(text)
            log.flush()
            if kill_at is None and pattern.search(text):
                matched = text.strip()
                kill_at = time.monotonic() + args.delay


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
