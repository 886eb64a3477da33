"""Release 1.1-irreversible: 0008 applies and cannot be unapplied, 0009 then fails.

The deploy_failed_migration scenario relies on exactly this shape to make the deploy's
undo fall back to restoring the pre-deploy backup; these tests pin it without Docker.
"""

from __future__ import annotations

from app_harness import DatabaseAt, ManageFactory

RELEASE = "1.1-irreversible"


def applied(database, app: str) -> list[str]:
    return [name for (name,) in database.query(
        "SELECT name FROM django_migrations WHERE app = %s ORDER BY name", (app,))]


def test_deploying_it_applies_0008_then_fails_at_0009(database_at: DatabaseAt, manage_factory: ManageFactory) -> None:
    database = database_at("1.0")
    manage = manage_factory(database)
    manage("1.0", "seed_demo_data")
    database.execute("UPDATE inventory_stockmovement SET note = '  padded  ' WHERE id = "
                     "(SELECT min(id) FROM inventory_stockmovement)")

    result = manage(RELEASE, "migrate", "--no-input", check=False)

    assert result.returncode != 0
    assert "column \"source\"" in result.stderr and "null values" in result.stderr
    assert applied(database, "inventory")[-1] == "0008_trim_movement_notes"
    assert database.value("SELECT count(*) FROM inventory_stockmovement WHERE note = '  padded  '") == 0


def test_its_0008_cannot_be_unapplied(database_at: DatabaseAt, manage_factory: ManageFactory) -> None:
    database = database_at("1.0")
    manage = manage_factory(database)
    manage("1.0", "seed_demo_data")
    manage(RELEASE, "migrate", "--no-input", check=False)

    result = manage(RELEASE, "migrate", "inventory", "0007_populate_customer_numbers", check=False)

    assert result.returncode != 0
    assert "IrreversibleError" in result.stderr
    assert applied(database, "inventory")[-1] == "0008_trim_movement_notes"


def test_its_models_match_its_migrations(database_at: DatabaseAt, manage_factory: ManageFactory) -> None:
    """Raw SQL only: the models stay 1.0's, so the release ships no schema its migrations lack."""
    result = manage_factory(database_at("1.0"))(RELEASE, "makemigrations", "--check", "--dry-run", check=False)

    assert result.returncode == 0, result.stdout + result.stderr
