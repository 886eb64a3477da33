"""The rollback scenarios' measuring tools against the real API and a real database.

molecule/_shared/files/stock_writer.py posts to a live gunicorn of release 2.0 and every
movement it was told was recorded is looked up in the database; molecule/_shared/files/
table_checksums.sql (through psql, as the scenarios run it) sees every change of the
contents but the writer's rows, and a column that a migration drops as dropped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app_harness import Database, DatabaseAt, LiveApi, ManageFactory, postgres_bindir, with_database

SHARED = Path(__file__).resolve().parents[2] / "molecule" / "_shared"
WRITER = SHARED / "files" / "stock_writer.py"
sys.path.insert(0, str(SHARED))
from depotix_checks import CHECKSUMS_SQL, content_changes  # noqa: E402


def checksums(database: Database) -> dict:
    """Run table_checksums.sql with psql as the database's owner; return {table: checksums}."""
    admin = urlsplit(database.server.admin_url)
    env = dict(os.environ, PGPASSWORD=unquote(admin.password or ""))
    url = with_database(f"{admin.scheme}://{admin.username}@{admin.hostname}:{admin.port}/x", database.name)
    result = subprocess.run([str(postgres_bindir() / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url],
                            input=CHECKSUMS_SQL.read_text(), capture_output=True, text=True, env=env, check=True)
    tables: dict = {}
    for line in result.stdout.splitlines():
        tables.update(json.loads(line))
    return tables


def test_every_movement_the_real_api_acknowledged_is_found_by_its_note(live_api: LiveApi, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{live_api.client.token}\n")
    token_file.chmod(0o600)
    item = live_api.new_item(0)
    summary_file, stop_file = tmp_path / "summary.json", tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, str(WRITER), "write", "--name", "app-test", "--item", str(item),
                               "--token-file", str(token_file), "--stop-file", str(stop_file), "--out",
                               str(summary_file), "--port", str(live_api.server.port), "--max-seconds", "30"])
    time.sleep(2)
    stop_file.touch()
    assert writer.wait(timeout=30) == 0
    found = [row[0] for row in live_api.database.query(
        "SELECT note FROM inventory_stockmovement WHERE starts_with(note, 'writer:app-test:')")]
    checked = subprocess.run([sys.executable, str(WRITER), "check", "--summary", str(summary_file), "--out",
                              str(tmp_path / "check.json")], input="\n".join(found), text=True, check=True,
                             capture_output=True)
    verdict = json.loads((tmp_path / "check.json").read_text())
    assert verdict["acknowledged"] > 20 and "lost 0," in checked.stdout
    assert verdict["lost"] == 0 and verdict["duplicated_ids"] == []
    assert verdict["found_in_database"] == verdict["acknowledged"]
    # Each acknowledged movement added its one unit: the item's quantity counts them.
    assert live_api.quantity(item) == verdict["acknowledged"] + verdict["found_unacknowledged"]


def test_checksums_see_each_change_but_the_writers_rows(database_at: DatabaseAt) -> None:
    database = database_at("2.1")
    database.execute("INSERT INTO inventory_inventoryitem (name, sku, quantity, updated_at, location) VALUES "
                     "('Bolt', 'BOLT-M8', 5, now(), 'aisle 1'), ('Nut', 'NUT-M8', 3, now(), NULL)")
    database.execute("INSERT INTO inventory_stockmovement (item_id, type, qty_base, created_at, note) "
                     "SELECT id, 'IN', quantity, now(), 'seed: ' || sku FROM inventory_inventoryitem")
    before = checksums(database)
    assert "django_migrations" not in before and "auth_user" in before
    assert before["inventory_inventoryitem"]["rows"] == 2 and before["inventory_inventoryitem"]["key"] == ["id"]

    # The writer's item and movements, and Django's migration records, change nothing seen.
    database.execute("INSERT INTO inventory_inventoryitem (name, sku, quantity, updated_at) "
                     "VALUES ('Stock writer w', 'writer-w', 2, now())")
    database.execute("INSERT INTO inventory_stockmovement (item_id, type, qty_base, created_at, note) "
                     "SELECT id, 'IN', 1, now(), 'writer:w:' || n "
                     "FROM inventory_inventoryitem, generate_series(1, 2) n WHERE sku = 'writer-w'")
    database.execute("DELETE FROM django_migrations WHERE name = '0001_initial' AND app = 'apitokens'")
    assert content_changes(before, checksums(database)) == {}

    # One changed value is seen, by row and column; so is a movement that is not the writer's.
    database.execute("UPDATE inventory_inventoryitem SET quantity = 6 WHERE sku = 'BOLT-M8'")
    database.execute("INSERT INTO inventory_stockmovement (item_id, type, qty_base, created_at, note) "
                     "SELECT id, 'IN', 1, now(), 'not the writer' FROM inventory_inventoryitem WHERE sku = 'BOLT-M8'")
    bolt, added = database.value("SELECT id FROM inventory_inventoryitem WHERE sku = 'BOLT-M8'"), database.value(
        "SELECT id FROM inventory_stockmovement WHERE note = 'not the writer'")
    assert content_changes(before, checksums(database)) == {
        "inventory_inventoryitem": {"cells_changed": {str(bolt): ["quantity"]}},
        "inventory_stockmovement": {"rows_added": [str(added)]}}


def test_a_dropped_column_is_named_and_the_other_columns_still_compared(
        database_at: DatabaseAt, manage_factory: ManageFactory) -> None:
    database = database_at("2.1")
    database.execute("INSERT INTO inventory_inventoryitem (name, sku, quantity, updated_at, location) VALUES "
                     "('Bolt', 'BOLT-M8', 5, now(), 'aisle 1')")
    before = checksums(database)
    manage_factory(database)("2.1", "migrate", "inventory", "0008_add_idempotency_and_constraints")
    after = checksums(database)
    assert content_changes(before, after) == {"inventory_inventoryitem": {"columns_dropped": ["location"]}}
