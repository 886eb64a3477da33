#!/usr/bin/env python3
"""A stand-in for the docker CLI: runs `docker exec` commands on this machine, against a test cluster.

The backup script only ever runs `docker exec [-i] [-e K=V]... CONTAINER CMD...` and
`docker cp FILE CONTAINER:PATH`. Here CMD runs locally with PGHOST pointing at the
test cluster's socket directory (FAKE_DOCKER_PGHOST), and `cp` copies locally.

Faults, by environment variable:
  FAKE_DOCKER_DB_DOWN=1           every PostgreSQL client fails as if the server were gone
  FAKE_DOCKER_DUMP_DIES_AFTER=N   pg_dump writes N bytes, then fails as if the server died
  FAKE_DOCKER_STOPPED=1           every exec fails as docker's does on a stopped container
  FAKE_DOCKER_DAEMON_DOWN=1       every command fails as the CLI does when its daemon is gone
  FAKE_DOCKER_HANG=SECONDS        every command first waits that long (a daemon that does not answer)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

CLIENTS = {"pg_isready", "psql", "pg_dump", "pg_restore"}


def split_exec(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Return (environment, command) of `exec [-i] [--user U] [-e K=V]... CONTAINER CMD...` (the user is ignored)."""
    env: dict[str, str] = {}
    rest = list(args)
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag == "-e":
            key, _, value = rest.pop(0).partition("=")
            env[key] = value
        elif flag == "--user":
            rest.pop(0)
    return env, rest[1:]


def run_exec(args: list[str]) -> int:
    extra_env, command = split_exec(args)
    env = dict(os.environ, PGHOST=os.environ["FAKE_DOCKER_PGHOST"], **extra_env)
    if command[:2] == ["sh", "-c"] and "read -r snapshot" in command[2]:
        # pg_dump waiting for its snapshot's id on stdin (snapshot.py), as the container's sh runs it.
        snapshot = sys.stdin.readline().strip()
        if not snapshot:
            return 1
        command = [*command[3:], f"--snapshot={snapshot}"]
    program = os.path.basename(command[0])
    if program in CLIENTS and os.environ.get("FAKE_DOCKER_DB_DOWN"):
        sys.stderr.write(f"{program}: error: connection to server on socket failed: No such file or directory\n")
        return 2 if program == "pg_isready" else 1
    dies_after = os.environ.get("FAKE_DOCKER_DUMP_DIES_AFTER")
    if program == "pg_dump" and dies_after:
        done = subprocess.run(command, env=env, capture_output=True, check=False)
        sys.stdout.buffer.write(done.stdout[: int(dies_after)])
        sys.stderr.write("pg_dump: error: Dumping the contents of table \"inventory_stockmovement\" failed: "
                         "server closed the connection unexpectedly\n")
        return 1
    return subprocess.run(command, env=env, check=False).returncode


def run_cp(args: list[str]) -> int:
    source, target = args
    shutil.copyfile(source, target.split(":", 1)[1])
    return 0


def main(argv: list[str]) -> int:
    time.sleep(float(os.environ.get("FAKE_DOCKER_HANG") or 0))
    if os.environ.get("FAKE_DOCKER_DAEMON_DOWN"):
        sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                         "Is the docker daemon running?\n")
        return 1
    if argv and argv[0] == "exec" and os.environ.get("FAKE_DOCKER_STOPPED"):
        sys.stderr.write("Error response from daemon: container 4f1c2b9a7e0d is not running\n")
        return 1
    if argv and argv[0] == "exec":
        return run_exec(argv[1:])
    if argv and argv[0] == "cp":
        return run_cp(argv[1:])
    sys.stderr.write(f"fake docker: unsupported command {argv}\n")
    return 125


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
