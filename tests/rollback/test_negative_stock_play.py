"""Rollback scenario 4's task files, run by ansible-playbook against a real database.

support/scenario4_play.yml includes playbooks/rollback/negative_stock_plan.yml and
negative_stock.yml as rollback.yml does, on this machine; the postgres role's query entry
point reaches the test database through a docker stand-in (support/docker.py). What is
proved here is the play's side of the fix: what it plans, what it reports when writes
change the picture between plan and fix, how it stops at the lock timeout, and that a
second run changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from app_harness import Database
from rollback_sql import REPO, SqlRun, rollback_defaults

SUPPORT = Path(__file__).resolve().parent / "support"
DEFAULTS = rollback_defaults()
ITEMS = str(DEFAULTS["rollback_item_table"])
MOVEMENTS = str(DEFAULTS["rollback_movement_table"])
CONSTRAINT = str(DEFAULTS["rollback_quantity_constraint"])
# The banner of the query entry point's task when it runs the fix.
FIX_SQL_TASK = "TASK [postgres : Run SQL in the database container: lock the item table"


@dataclass
class PlayRun:
    done: subprocess.CompletedProcess[str]
    result: dict


PlayRunner = Callable[..., PlayRun]


def unchecked_movement_sql(item_id: int, movement_type: str, qty_base: int) -> str:
    """Return SQL that writes a movement as the app does (item locked, movement, quantity), without its check."""
    change = -qty_base if movement_type == "OUT" else qty_base
    return (
        f"SELECT 1 FROM {ITEMS} WHERE id = {item_id} FOR UPDATE;"
        f" INSERT INTO {MOVEMENTS} (item_id, type, qty_base, created_at, note)"
        f" VALUES ({item_id}, '{movement_type}', {qty_base}, now(), 'written between plan and fix');"
        f" UPDATE {ITEMS} SET quantity = quantity + {change} WHERE id = {item_id};"
    )


def changed_tasks(output: str) -> list[str]:
    """Return the names of the tasks that reported a change in a run's output."""
    changed, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK [") : line.rindex("]")]
        elif line.startswith("changed:"):
            changed.append(task)
    return changed


def new_item(database: Database, name: str, quantity: int) -> int:
    return database.value(
        f"INSERT INTO {ITEMS} (name, sku, quantity, updated_at) VALUES (%s, %s, %s, now()) RETURNING id",
        (name, f"P4-{name}", quantity),
    )


def contents(database: Database) -> list[list[tuple[object, ...]]]:
    return [
        database.query(f"SELECT * FROM {ITEMS} ORDER BY id"),
        database.query(f"SELECT * FROM {MOVEMENTS} ORDER BY id"),
    ]


def adjustments(database: Database) -> list[tuple[int, int]]:
    return database.query(f"SELECT item_id, qty_base FROM {MOVEMENTS} WHERE type = 'ADJUST' ORDER BY item_id")


@pytest.fixture
def negative_stock(database_at: Callable[[str], Database]) -> Database:
    """Release 2.0's database without the quantity constraint, A at -7, B at -3, C at 5."""
    database = database_at("2.0")
    database.execute(f"ALTER TABLE {ITEMS} DROP CONSTRAINT {CONSTRAINT}")
    for name, quantity in (("A", -7), ("B", -3), ("C", 5)):
        new_item(database, name, quantity)
    return database


@pytest.fixture
def play(tmp_path: Path) -> PlayRunner:
    """Return a function that runs the scenario's task files against a database; its output is kept."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").symlink_to(SUPPORT / "docker.py")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"[api]\nlocalhost\n[db]\nlocalhost\n[all:vars]\nansible_connection=local\n"
        f"ansible_python_interpreter={sys.executable}\n"
    )
    runs = iter(range(1, 100))

    def run(database: Database, **extra_vars: object) -> PlayRun:
        n = next(runs)
        connection = SqlRun(database, "depotix-scenario4-play").env()
        result_file = tmp_path / f"result{n}.json"
        vars_file = tmp_path / f"vars{n}.json"
        # The role refuses to run without the database's credentials; the test cluster's come from psql's.
        vars_file.write_text(
            json.dumps(
                {
                    "postgres_superuser_password": connection["PGPASSWORD"],
                    "postgres_password": connection["PGPASSWORD"],
                    "scenario4_result": str(result_file),
                    **extra_vars,
                }
            )
        )
        env = {
            **os.environ,
            **connection,
            "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{connection['PATH']}",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
        }
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(inventory),
                str(SUPPORT / "scenario4_play.yml"),
                "-e",
                f"@{vars_file}",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        (tmp_path / f"run{n}.log").write_text(done.stdout + done.stderr)
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        return PlayRun(done, result)

    return run


def test_play_corrects_what_it_finds_under_its_lock_and_says_how_that_differs_from_the_plan(
    negative_stock: Database, play: PlayRunner
) -> None:
    item_a, item_b, item_c = (
        negative_stock.value(f"SELECT id FROM {ITEMS} WHERE name = %s", (name,)) for name in "ABC"
    )
    between = f"BEGIN; {unchecked_movement_sql(item_c, 'OUT', 9)} {unchecked_movement_sql(item_b, 'IN', 5)} COMMIT;"

    run = play(negative_stock, between_plan_and_fix=between)

    assert run.done.returncode == 0, run.done.stdout[-3000:]
    assert [item["id"] for item in run.result["negative_planned"]] == [item_a, item_b]
    assert any("read the items below zero again under the lock" in line for line in run.result["plan"])
    assert run.result["fix"] == {
        "corrected": [
            {"id": item_a, "name": "A", "quantity": -7, "adjustment": 7},
            {"id": item_c, "name": "C", "quantity": -4, "adjustment": 4},
        ],
        "constraint": "CHECK ((quantity >= 0))",
    }
    first, differs = run.result["notes"]
    assert first.startswith("Scenario 4 corrected 2 item(s) in one transaction")
    assert differs.startswith("This differs from the plan") and f'"id": {item_b}' in differs
    assert adjustments(negative_stock) == [(item_a, 7), (item_c, 4)]
    assert negative_stock.value(f"SELECT count(*) FROM {ITEMS} WHERE quantity < 0") == 0


def test_play_stops_at_the_lock_timeout_saying_that_nothing_changed(negative_stock: Database, play: PlayRunner) -> None:
    before = contents(negative_stock)

    with negative_stock.transaction() as request_in_flight:
        request_in_flight.execute(f"SELECT 1 FROM {ITEMS} WHERE name = 'C' FOR UPDATE")
        run = play(negative_stock, rollback_stock_lock_timeout="1s")

    output = " ".join(run.done.stdout.split())
    assert run.done.returncode != 0
    assert "Scenario 4's fix did not complete and was rolled back as a whole" in output
    assert f"It waited more than 1s (rollback_stock_lock_timeout) for the writes in flight on {ITEMS}:" in output
    assert "Run rollback.yml -e scenario=4 again when it has ended" in output
    assert contents(negative_stock) == before


def test_play_run_again_changes_nothing(negative_stock: Database, play: PlayRunner) -> None:
    first = play(negative_stock)
    assert first.done.returncode == 0, first.done.stdout[-3000:]
    after_first = contents(negative_stock)

    again = play(negative_stock)

    assert again.done.returncode == 0, again.done.stdout[-3000:]
    assert changed_tasks(again.done.stdout) == ["Write what the plan and the fix said"]
    assert again.result["fix"] is None and again.result["plan"][-1] == "nothing to do"
    assert FIX_SQL_TASK not in again.done.stdout, "the fix's SQL ran, though there was nothing to do"
    assert contents(negative_stock) == after_first
