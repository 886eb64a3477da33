"""The inventory migrations, run by each release's own manage.py against real PostgreSQL.

These are the moves the deploy and rollback plays make: 1.0 -> 2.0, 2.0 back to 0007,
forward again, 2.1 back across two migrations; and the runbook's failure modes: 0008
refusing qty_base = 0 rows, 0008's lossy data step, old code unable to unapply 0008.
"""

from __future__ import annotations

import pytest
from psycopg.errors import CheckViolation

from app_harness import Database, DatabaseAt, ManageFactory

TO_0007 = ("migrate", "inventory", "0007_populate_customer_numbers")
CONSTRAINTS_SQL = """
    SELECT con.conname, pg_get_constraintdef(con.oid)
    FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid
    WHERE rel.relname = %s AND con.contype = 'c' ORDER BY con.conname
"""


def check_constraints(database: Database, table: str) -> dict[str, str]:
    """Return {name: definition} of the table's CHECK constraints."""
    return dict(database.query(CONSTRAINTS_SQL, (table,)))


def columns(database: Database, table: str) -> set[str]:
    rows = database.query("SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))
    return {name for (name,) in rows}


def indexes(database: Database, table: str) -> set[str]:
    return {name for (name,) in database.query("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,))}


def applied(database: Database, app: str) -> list[str]:
    rows = database.query("SELECT name FROM django_migrations WHERE app = %s ORDER BY name", (app,))
    return [name for (name,) in rows]


def table_snapshot(database: Database) -> dict[str, list[tuple[object, ...]]]:
    """Return every row the rollback must keep, in a stable order."""
    return {
        "customers": database.query("SELECT id, name, email, customer_number FROM inventory_customer ORDER BY id"),
        "items": database.query("SELECT id, sku, name, quantity FROM inventory_inventoryitem ORDER BY id"),
        "movements": database.query(
            "SELECT id, item_id, type, qty_base, note, created_by_id, created_at"
            " FROM inventory_stockmovement ORDER BY id"
        ),
    }


def assert_schema_is_2_0(database: Database) -> None:
    assert "idempotency_key" in columns(database, "inventory_stockmovement")
    assert check_constraints(database, "inventory_stockmovement") == {
        "inventory_stockmovement_qty_base_positive": "CHECK ((qty_base > 0))"
    }
    assert check_constraints(database, "inventory_inventoryitem") == {
        "inventory_inventoryitem_quantity_non_negative": "CHECK ((quantity >= 0))"
    }
    assert {"inv_move_item_type_created_idx", "inv_move_creator_created_idx"} <= indexes(
        database, "inventory_stockmovement"
    )
    assert applied(database, "inventory")[-1] == "0008_add_idempotency_and_constraints"


def assert_schema_is_1_0(database: Database) -> None:
    assert "idempotency_key" not in columns(database, "inventory_stockmovement")
    assert check_constraints(database, "inventory_stockmovement") == {
        "inventory_stockmovement_qty_base_non_negative": "CHECK ((qty_base >= 0))"
    }
    assert check_constraints(database, "inventory_inventoryitem") == {}
    assert not {"inv_move_item_type_created_idx", "inv_move_creator_created_idx"} & indexes(
        database, "inventory_stockmovement"
    )
    assert applied(database, "inventory")[-1] == "0007_populate_customer_numbers"


def add_item(database: Database, sku: str, quantity: int) -> int:
    return database.value(
        "INSERT INTO inventory_inventoryitem (name, sku, quantity, updated_at) VALUES (%s, %s, %s, now()) RETURNING id",
        (sku, sku, quantity),
    )


def add_movement(database: Database, item_id: int, qty_base: int, movement_type: str = "IN") -> int:
    return database.value(
        "INSERT INTO inventory_stockmovement (item_id, type, qty_base, note, created_at) "
        "VALUES (%s, %s, %s, 'inserted by test', now()) RETURNING id",
        (item_id, movement_type, qty_base),
    )


def test_migrating_to_0008_back_to_0007_and_forward_keeps_every_row(
    database_at: DatabaseAt, manage_factory: ManageFactory
) -> None:
    database = database_at("1.0")
    manage = manage_factory(database)
    manage("1.0", "seed_demo_data")
    before = table_snapshot(database)
    assert before["movements"], "the seed must leave movements to carry through the round trip"

    manage("2.0", "migrate", "--no-input")
    assert_schema_is_2_0(database)
    assert table_snapshot(database) == before

    manage("2.0", *TO_0007)
    assert_schema_is_1_0(database)
    assert table_snapshot(database) == before

    manage("2.0", "migrate", "--no-input")
    assert_schema_is_2_0(database)
    assert table_snapshot(database) == before


def test_movements_recorded_under_2_0_survive_the_rollback_to_0007(
    database_at: DatabaseAt, manage_factory: ManageFactory
) -> None:
    database = database_at("2.0")
    item_id = add_item(database, "KEYED", 10)
    movement_id = database.value(
        "INSERT INTO inventory_stockmovement (item_id, type, qty_base, note, created_at, idempotency_key) "
        "VALUES (%s, 'IN', 5, 'keyed', now(), 'key-1') RETURNING id",
        (item_id,),
    )

    manage_factory(database)("2.0", *TO_0007)

    assert database.query(
        "SELECT item_id, qty_base, note FROM inventory_stockmovement WHERE id = %s", (movement_id,)
    ) == [(item_id, 5, "keyed")]


def test_0008_aborts_on_zero_qty_base_and_changes_nothing(
    database_at: DatabaseAt, manage_factory: ManageFactory
) -> None:
    database = database_at("1.0")
    item_id = add_item(database, "ZERO", -4)
    add_movement(database, item_id, 0)
    add_movement(database, item_id, 0, "OUT")
    before = table_snapshot(database)

    result = manage_factory(database)("2.0", "migrate", "--no-input", check=False)

    assert result.returncode != 0
    assert "2 stock movement(s) have qty_base = 0" in result.stderr
    assert_schema_is_1_0(database)
    # The clamp of negative quantities ran in the same transaction and was rolled back too.
    assert table_snapshot(database) == before


def test_0008_migrates_once_the_zero_rows_are_corrected(database_at: DatabaseAt, manage_factory: ManageFactory) -> None:
    database = database_at("1.0")
    movement_id = add_movement(database, add_item(database, "FIXED", 3), 0)
    manage = manage_factory(database)
    assert manage("2.0", "migrate", "--no-input", check=False).returncode != 0

    database.execute("UPDATE inventory_stockmovement SET qty_base = 3 WHERE id = %s", (movement_id,))
    manage("2.0", "migrate", "--no-input")

    assert_schema_is_2_0(database)


def test_0008_sets_negative_quantities_to_zero_and_its_reverse_does_not_restore_them(
    database_at: DatabaseAt, manage_factory: ManageFactory
) -> None:
    database = database_at("1.0")
    negative = add_item(database, "NEG", -7)
    positive = add_item(database, "POS", 12)
    manage = manage_factory(database)

    manage("2.0", "migrate", "--no-input")
    assert (database.value("SELECT quantity FROM inventory_inventoryitem WHERE id = %s", (negative,))) == 0

    manage("2.0", *TO_0007)
    quantities = dict(
        database.query("SELECT id, quantity FROM inventory_inventoryitem WHERE id IN (%s, %s)", (negative, positive))
    )
    assert quantities == {negative: 0, positive: 12}, "the data step is lossy: only a backup has the -7"


def test_2_0_refuses_writes_that_1_0_allowed(database_at: DatabaseAt) -> None:
    database = database_at("2.0")
    item_id = add_item(database, "STRICT", 1)
    with pytest.raises(CheckViolation, match="inventory_inventoryitem_quantity_non_negative"):
        database.execute("UPDATE inventory_inventoryitem SET quantity = -1 WHERE id = %s", (item_id,))
    with pytest.raises(CheckViolation, match="inventory_stockmovement_qty_base_positive"):
        add_movement(database, item_id, 0)


def test_rolling_back_2_1_to_0007_unapplies_0009_then_0008(
    database_at: DatabaseAt, manage_factory: ManageFactory
) -> None:
    database = database_at("1.0")
    manage = manage_factory(database)
    manage("1.0", "seed_demo_data")
    before = table_snapshot(database)
    manage("2.1", "migrate", "--no-input")
    assert "location" in columns(database, "inventory_inventoryitem")

    result = manage("2.1", *TO_0007)

    assert result.stdout.index("Unapplying inventory.0009_inventoryitem_location") < result.stdout.index(
        "Unapplying inventory.0008_add_idempotency_and_constraints"
    )
    assert "location" not in columns(database, "inventory_inventoryitem")
    assert_schema_is_1_0(database)
    assert table_snapshot(database) == before


def test_code_of_1_0_cannot_unapply_0008(database_at: DatabaseAt, manage_factory: ManageFactory) -> None:
    """Runbook scenario 2 reverts the code first: 1.0 has no 0008 file, so 0008 stays applied."""
    database = database_at("2.0")

    manage_factory(database)("1.0", *TO_0007)

    assert_schema_is_2_0(database)


def test_0007_reverse_clears_generated_customer_numbers_and_keeps_hand_set_ones(
    database_at: DatabaseAt, manage_factory: ManageFactory
) -> None:
    database = database_at("1.0")
    manage = manage_factory(database)
    manage("1.0", "migrate", "inventory", "0006_customer_customer_number")
    plain = database.value(
        "INSERT INTO inventory_customer (name, email, created_at) VALUES ('Plain', '', now()) RETURNING id"
    )
    vip = database.value(
        "INSERT INTO inventory_customer (name, email, created_at, customer_number)"
        " VALUES ('Vip', '', now(), 'VIP-1') RETURNING id"
    )

    manage("1.0", "migrate", "inventory", "0007_populate_customer_numbers")
    numbers = dict(database.query("SELECT id, customer_number FROM inventory_customer"))
    assert numbers == {plain: f"C{plain:06d}", vip: "VIP-1"}

    manage("1.0", "migrate", "inventory", "0006_customer_customer_number")
    assert dict(database.query("SELECT id, customer_number FROM inventory_customer")) == {plain: None, vip: "VIP-1"}


@pytest.mark.parametrize("release", ["1.0", "2.0", "2.1"])
def test_models_of_each_release_match_its_migrations(
    release: str, database_at: DatabaseAt, manage_factory: ManageFactory
) -> None:
    """A model change without its migration would ship a schema no migration creates."""
    manage = manage_factory(database_at("1.0"))  # any database will do: nothing is applied

    result = manage(release, "makemigrations", "--check", "--dry-run", check=False)

    assert result.returncode == 0, result.stdout + result.stderr


def test_2_0_broken_still_runs_migration_commands(database_at: DatabaseAt, manage_factory: ManageFactory) -> None:
    """The rollback unapplies 0008 with the broken image while its server crash-loops."""
    database = database_at("2.0")
    manage = manage_factory(database)

    shown = manage("2.0-broken", "showmigrations", "inventory")
    assert "[X] 0008_add_idempotency_and_constraints" in shown.stdout

    manage("2.0-broken", *TO_0007)
    assert_schema_is_1_0(database)
