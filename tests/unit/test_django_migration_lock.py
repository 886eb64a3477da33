"""Migrations run one at a time per database: the probe holds a PostgreSQL advisory lock while it migrates.

The fixture project runs on a throwaway PostgreSQL cluster here (SQLite has no advisory
locks). A first migrate is slowed down inside a migration (FIXTURE_SLOW_MIGRATION), so it
holds the lock while a second one starts: the second either waits and then finds nothing
left to do, or, when its wait is shorter, is refused naming the session that holds the lock.
Without the lock both would plan the same steps and the second would fail on tables the
first one created.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from ansible.module_utils.django_migration_docker import container_program
from ansible.module_utils.django_migration_probe import MIGRATE_LOCK
from ansible.module_utils.django_migration_protocol import parse_output
from conftest import FIXTURE_PROJECT, fixture_env


def postgres_bindir() -> Path:
    """Return the newest installed PostgreSQL server's bin directory; fail when there is none (never skip)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        pytest.fail("no PostgreSQL server binaries: run make bootstrap (it installs Debian's postgresql package)")
    return Path(found[-1]).parent


def as_postgres(*command: str) -> list:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


def psql(socket_dir: Path, database: str, statement: str) -> str:
    done = subprocess.run(
        [
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(socket_dir),
            "-U",
            "postgres",
            "-d",
            database,
        ],
        input=statement,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    """A PostgreSQL cluster on a private socket directory (trust auth, no TCP)."""
    bindir = postgres_bindir()
    base = Path(tempfile.mkdtemp(prefix="depotix-migration-lock-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data = base / "data"
    subprocess.run(
        as_postgres(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"),
        check=True,
        capture_output=True,
    )
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("listen_addresses = ''\nunix_socket_directories = '%s'\nfsync = off\n" % base)
    subprocess.run(
        as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "start"),
        check=True,
        capture_output=True,
    )
    try:
        yield base
    finally:
        subprocess.run(
            as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def database(cluster: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "lock_%s" % request.node.name.lower()[-40:].replace("-", "_")
    psql(cluster, "postgres", "CREATE DATABASE %s" % name)
    yield name
    psql(cluster, "postgres", "DROP DATABASE %s WITH (FORCE)" % name)


def start_migrate(cluster: Path, name: str, timeout: int, slow: float = 0) -> subprocess.Popen:
    """Start the probe (as a container runs it) migrating every app to its leaf."""
    request = {"action": "migrate", "app": None, "target": None, "timeout": timeout, "grace": 5}
    env = fixture_env(
        Path("/nonexistent"), FIXTURE_PG_HOST=str(cluster), FIXTURE_PG_NAME=name, FIXTURE_SLOW_MIGRATION=str(slow)
    )
    program = tempfile.TemporaryFile("w+")
    program.write(container_program())
    program.seek(0)
    with program:
        process = subprocess.Popen(
            [sys.executable, "-", json.dumps(request)],
            stdin=program,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(FIXTURE_PROJECT),
            env=env,
        )
    return process


def result_of(process: subprocess.Popen) -> Dict[str, Any]:
    stdout, stderr = process.communicate(timeout=120)
    document = parse_output(stdout)
    assert document is not None, stdout + stderr
    return document


def lock_holders(cluster: Path, name: str) -> list:
    """Return the sessions holding the migration lock: pid and application name, as pg_locks shows them."""
    rows = psql(
        cluster,
        name,
        "SELECT a.pid || ' ' || a.application_name FROM pg_locks l"
        " JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND l.objid = %d AND l.granted" % MIGRATE_LOCK,
    )
    return rows.splitlines()


def wait_for_lock(cluster: Path, name: str, process: subprocess.Popen) -> list:
    """Wait until the first migrate holds the lock while it migrates; return the holders."""
    for _ in range(200):
        holders = lock_holders(cluster, name)
        applied = psql(cluster, name, "SELECT to_regclass('django_migrations') IS NOT NULL")
        if holders and applied == "t":
            return holders
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    raise AssertionError("the first migrate never held the lock")


def applied(cluster: Path, name: str) -> list:
    return psql(cluster, name, "SELECT app || '.' || name FROM django_migrations ORDER BY id").splitlines()


def test_second_migrate_waits_for_the_first_and_then_finds_nothing_to_do(cluster: Path, database: str) -> None:
    first = start_migrate(cluster, database, timeout=60, slow=4)
    holders = wait_for_lock(cluster, database, first)
    second = start_migrate(cluster, database, timeout=60)

    first_result, second_result = result_of(first), result_of(second)

    assert len(holders) == 1 and holders[0].split(" ", 1)[1].startswith("django_migration ")
    assert first_result["ok"], first_result
    assert "billing.0002_invoice_note" in ["%s.%s" % (step["app"], step["name"]) for step in first_result["plan"]]
    # The second one planned only once the first had finished: nothing left, nothing run twice.
    assert second_result["ok"], second_result
    assert second_result["plan"] == []
    assert second_result["before"] == first_result["after"]
    assert len(applied(cluster, database)) == len(set(applied(cluster, database)))
    assert lock_holders(cluster, database) == []


def test_second_migrate_is_refused_naming_the_session_that_holds_the_lock(cluster: Path, database: str) -> None:
    first = start_migrate(cluster, database, timeout=90, slow=30)
    holders = wait_for_lock(cluster, database, first)
    holder_pid = holders[0].split(" ", 1)[0]
    # timeout 20: the second waits 10 s for the lock, then gives up, while the first still holds it
    # (the margin is for Django's start on a busy machine, which the timeout also covers).
    started = time.monotonic()
    refused = result_of(start_migrate(cluster, database, timeout=20))
    waited = time.monotonic() - started
    before_first_ends = applied(cluster, database)
    first_result = result_of(first)

    assert refused["ok"] is False
    assert refused["kind"] == "migrate_locked"
    assert "pid %s (django_migration " % holder_pid in refused["message"]
    assert "nothing was migrated" in refused["message"]
    assert waited >= 10
    assert first_result["ok"], first_result
    # The refused run changed nothing: what is applied is what the first run applied, once each.
    assert set(before_first_ends) <= set(applied(cluster, database))
    assert len(applied(cluster, database)) == len(set(applied(cluster, database)))
    assert lock_holders(cluster, database) == []
