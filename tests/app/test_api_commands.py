"""The lab's management commands: create_api_token and seed_demo_data, both idempotent."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from app_harness import Database, DatabaseAt, ManageFactory

TOKEN_USER = "lab-ops"


def token_hashes(database: Database) -> list[str]:
    rows = database.query(
        "SELECT t.key_hash FROM apitokens_apitoken t JOIN auth_user u ON u.id = t.user_id WHERE u.username = %s",
        (TOKEN_USER,),
    )
    return [key_hash for (key_hash,) in rows]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_create_api_token_writes_a_private_file_and_keeps_it_on_the_next_run(
    database_at: DatabaseAt, manage_factory: ManageFactory, tmp_path: Path
) -> None:
    database = database_at("1.0")
    manage = manage_factory(database)
    token_file = tmp_path / "token"

    first = manage("1.0", "create_api_token", TOKEN_USER, "--output", str(token_file))
    token = token_file.read_text().strip()
    second = manage("1.0", "create_api_token", TOKEN_USER, "--output", str(token_file))

    assert first.stdout.startswith("created:")
    assert second.stdout.startswith("unchanged:")
    assert token_file.read_text().strip() == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token not in first.stdout + second.stdout
    assert token_hashes(database) == [sha256(token)], "only the token's hash is stored"


def test_create_api_token_replaces_a_file_whose_token_is_no_longer_valid(
    database_at: DatabaseAt, manage_factory: ManageFactory, tmp_path: Path
) -> None:
    manage = manage_factory(database_at("1.0"))
    token_file = tmp_path / "token"
    token_file.write_text("stale-token\n")

    result = manage("1.0", "create_api_token", TOKEN_USER, "--output", str(token_file))

    assert result.stdout.startswith("created:")
    assert token_file.read_text().strip() != "stale-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_create_api_token_without_output_prints_a_new_token_replacing_the_old(
    database_at: DatabaseAt, manage_factory: ManageFactory
) -> None:
    database = database_at("1.0")
    manage = manage_factory(database)

    first = manage("1.0", "create_api_token", TOKEN_USER).stdout.strip()
    second = manage("1.0", "create_api_token", TOKEN_USER).stdout.strip()

    assert first != second
    assert token_hashes(database) == [sha256(second)]


@pytest.mark.parametrize("release", ["1.0", "2.0"])
def test_seed_demo_data_is_idempotent_and_quantities_match_movements(
    release: str, database_at: DatabaseAt, manage_factory: ManageFactory
) -> None:
    database = database_at(release)
    manage = manage_factory(database)
    counts = (
        "SELECT (SELECT count(*) FROM inventory_customer), (SELECT count(*) FROM inventory_inventoryitem),"
        " (SELECT count(*) FROM inventory_stockmovement)"
    )

    first = manage(release, "seed_demo_data")
    after_first = database.query(counts)
    second = manage(release, "seed_demo_data")

    assert first.stdout.startswith("seeded:")
    assert second.stdout.startswith("unchanged:")
    assert database.query(counts) == after_first
    assert after_first[0][2] > 0
    mismatched = database.query(
        "SELECT i.sku FROM inventory_inventoryitem i LEFT JOIN inventory_stockmovement m ON m.item_id = i.id"
        " GROUP BY i.id"
        " HAVING i.quantity <> COALESCE(SUM(CASE m.type WHEN 'OUT' THEN -m.qty_base ELSE m.qty_base END), 0)"
    )
    assert mismatched == []
