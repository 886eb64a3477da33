"""django_migration's probe runs a migration again when a concurrent session deadlocks with it.

Unapplying 2.0's 0008 takes ACCESS EXCLUSIVE locks on the movement table and on the
item table in turn; the API's writes take ROW EXCLUSIVE locks on both, in their own
order. When the two cross, PostgreSQL ends one of them. This test makes them cross on
purpose, on a real PostgreSQL with the real release trees, and makes the migration the
one PostgreSQL ends (the other session waits longer before its deadlock check): the
probe must bring the state back, run the migration again, and finish it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import ansible.module_utils
import psycopg
from app_harness import Database, DatabaseServer, ReleaseTree, app_environment

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(REPO / "module_utils"))

from ansible.module_utils.django_migration_docker import container_program  # noqa: E402
from ansible.module_utils.django_migration_protocol import parse_output  # noqa: E402

M0007 = "0007_populate_customer_numbers"


def waiting_lock(conn: psycopg.Connection, other_than: int) -> tuple[int, str, list[str]] | None:
    """Return (pid, relation it waits for, relations it holds ACCESS EXCLUSIVE) of a blocked session."""
    rows = conn.execute(
        "SELECT pid, relation::regclass::text FROM pg_locks WHERE NOT granted AND relation IS NOT NULL AND pid <> %s",
        (other_than,),
    ).fetchall()
    if not rows:
        return None
    pid, waits_for = rows[0]
    held = [r[0] for r in conn.execute(
        "SELECT relation::regclass::text FROM pg_locks WHERE granted AND pid = %s AND mode = 'AccessExclusiveLock' "
        "AND relation IS NOT NULL", (pid,)).fetchall()]
    return pid, waits_for, held


def test_a_migration_ended_by_a_deadlock_runs_again_and_finishes(
    db_server: DatabaseServer, database_at, release_tree: ReleaseTree, secret_key: str
) -> None:
    database: Database = database_at("2.0")
    request = {"action": "migrate", "app": "inventory", "target": "0007", "allow_lossy": True,
               "timeout": 60, "grace": 6, "manage_py": "manage.py", "settings": None}
    seen: dict = {}

    with psycopg.connect(db_server.conninfo(database.name)) as writer:
        # The writer holds a row lock on the item table, as a movement being recorded does.
        writer.execute("SET deadlock_timeout = '10s'")
        writer.execute("LOCK TABLE inventory_inventoryitem IN ROW EXCLUSIVE MODE")
        writer_pid = writer.info.backend_pid

        probe = subprocess.Popen(
            [sys.executable, "-", json.dumps(request)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=release_tree("2.0"),
            env=app_environment(database, "2.0", secret_key))
        def feed() -> None:
            probe.stdin.write(container_program())
            probe.stdin.close()

        feeder = threading.Thread(target=feed)
        feeder.start()
        with psycopg.connect(db_server.conninfo(database.name), autocommit=True) as watcher:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not seen.get("blocked"):
                found = waiting_lock(watcher, writer_pid)
                if found:
                    seen.update(blocked=found)
                time.sleep(0.05)
            activity = watcher.execute(
                "SELECT pid, state, wait_event_type, wait_event, left(query, 120) FROM pg_stat_activity "
                "WHERE datname = current_database()").fetchall()
        feeder.join()
        probe.stdin = None  # fed and closed: communicate() only reads from here on
        if not seen.get("blocked"):
            probe.kill()
            out, err = probe.communicate()
            raise AssertionError("the migration never waited for the writer's lock:\n%s\n%s\n%s"
                                 % (activity, out[-2000:], err[-2000:]))
        pid, waits_for, held = seen["blocked"]
        # The fault: the migration holds the movement table and waits for the item table; the writer
        # now asks for the movement table, which closes the cycle.
        assert waits_for == "inventory_inventoryitem" and "inventory_stockmovement" in held, seen
        writer.execute("LOCK TABLE inventory_stockmovement IN ROW EXCLUSIVE MODE")
        seen["writer_got_its_lock"] = True
        writer.commit()

    out, err = probe.communicate(timeout=90)
    document = parse_output(out)
    assert document is not None, err[-3000:]
    assert seen["writer_got_its_lock"]
    assert document["ok"] is True, document.get("message")
    notes = [line for line in document["migrate_output"] if "attempt 1 of 10 ended in a deadlock" in line]
    assert notes, document["migrate_output"]
    assert document["after"]["inventory"]["applied"][-1] == M0007
    applied = [r[0] for r in database.query("SELECT name FROM django_migrations WHERE app = 'inventory' ORDER BY id")]
    assert applied[-1] == M0007 and "0008_add_idempotency_and_constraints" not in applied
