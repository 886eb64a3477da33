#!/usr/bin/env python3
"""A stand-in for the docker CLI, for tests/lab/test_kill_during.py: the "server" is this machine.

    exec [-i] SERVER COMMAND...      runs COMMAND here (python3 is the running Python)
    ps --filter status=running ...   names of the "containers" whose process lives
    inspect ... NAME                 "true PID" or "false 0" for a container
    kill [--signal SIG] NAME         sends the signal (SIGKILL by default) to its process

The containers are a JSON file (FAKE_DOCKER_STATE): {name: pid of its first process}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def containers() -> dict[str, int]:
    return json.loads(Path(os.environ["FAKE_DOCKER_STATE"]).read_text())


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "exec":
        args = [a for a in args if a != "-i"][1:]
        if args[0] == "python3":
            args[0] = os.environ.get("FAKE_DOCKER_PYTHON", sys.executable)
        os.execvp(args[0], args)
    if command == "ps":
        print("\n".join(name for name, pid in containers().items() if alive(pid)))
        return 0
    if command == "inspect":
        pid = containers().get(args[-1])
        if pid is None:
            print(f"Error: No such container: {args[-1]}", file=sys.stderr)
            return 1
        print(f"true {pid}" if alive(pid) else "false 0")
        return 0
    if command == "kill":
        signum = signal.Signals[args[1]] if args[0] == "--signal" else signal.SIGKILL
        pid = containers().get(args[-1])
        if pid is None or not alive(pid):
            print(f"Error: container {args[-1]} is not running", file=sys.stderr)
            return 1
        os.kill(pid, signum)
        print(args[-1])
        return 0
    print(f"fake docker: {command} is not faked", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
