"""No hang: a table lock held elsewhere fails the dump within its limits, saying what it waited on.

Another session holds an ACCESS EXCLUSIVE lock on a table (as a long migration would).
With lock_wait_timeout the dump gives up on that lock; with dump_timeout the whole dump
is stopped (its server sessions ended). Either way the run fails within the limit,
leaves nothing that counts as a dump, and leaves no session of its own behind.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

LOCKED = "inventory_stockmovement"


@pytest.fixture
def table_locked(lab) -> Iterator[subprocess.Popen]:
    """Hold an ACCESS EXCLUSIVE lock on the movements table in another session for up to a minute."""
    holder = subprocess.Popen(["psql", "-X", "-q", "-h", str(lab.socket_dir), "-U", "postgres", "-d", lab.database,
                               "-c", f"BEGIN; LOCK TABLE {LOCKED} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while lab.sql(f"SELECT count(*) FROM pg_locks WHERE relation = '{LOCKED}'::regclass "
                  "AND mode = 'AccessExclusiveLock' AND granted") != "1":
        assert time.monotonic() < deadline, "the lock was not taken"
        time.sleep(0.1)
    yield holder
    holder.kill()
    holder.wait()


def our_sessions(lab) -> int:
    """Return how many server sessions of depotix-backup runs remain, after they had a few seconds to end."""
    deadline = time.monotonic() + 10
    while True:
        count = int(lab.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'depotix-backup-%'"))
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def timed_dump(lab) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = lab.run("dump")
    return done, time.monotonic() - started


def test_a_held_lock_fails_the_dump_after_the_lock_wait_saying_which_table(lab, table_locked):
    lab.write_config(lock_wait_timeout=1, dump_timeout=120)
    done, seconds = timed_dump(lab)
    assert done.returncode == 1 and seconds < 30, (seconds, done.stderr)
    assert f"waited more than 1 s (backup_lock_wait_timeout) for a lock on public.{LOCKED}" in done.stderr
    assert "no partial dump was kept" in done.stderr
    assert lab.files() == set() and our_sessions(lab) == 0


def test_a_dump_past_its_time_limit_is_stopped_saying_what_it_waited_on(lab, table_locked):
    lab.write_config(lock_wait_timeout=0, dump_timeout=3)  # 0: a lock is waited for forever
    done, seconds = timed_dump(lab)
    assert done.returncode == 1 and seconds < 30, (seconds, done.stderr)
    assert "the dump did not finish within 3 s (backup_dump_timeout) and was stopped" in done.stderr
    assert "pg_dump was waiting on Lock relation, held by pid " in done.stderr
    assert f"LOCK TABLE {LOCKED} IN ACCESS EXCLUSIVE MODE" in done.stderr
    assert lab.files() == set() and our_sessions(lab) == 0


def test_the_lock_wait_reaches_pg_dump(lab):
    from depotix_backup.snapshot import pg_dump_argv
    argv = pg_dump_argv({**lab.config, "lock_wait_timeout": 7}, "depotix-backup-dump-1")
    assert "--lock-wait-timeout=7000" in argv and argv[argv.index("pg_dump") + 1] == "-Fc"
    assert "PGAPPNAME=depotix-backup-dump-1" in argv
