"""What a backwards plan drops (tables, columns, the rows holding data there), and apps taken out whole.

Unapplying AddField drops its column, CreateModel its table: the plan lists
them as ``drops`` with the rows holding data, counted before anything runs; a
drop where rows hold data makes the plan lossy. Unapplying an app's initial
migration (the app to zero) needs ``allow_drop_app``. The probe runs against
the fixture project on SQLite; the module through the fake docker CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest
from ansible.module_utils.django_migration_protocol import drop_holds_data, drop_sentence
from conftest import BILLING, SHOP, DockerHost, applied_rows, execute, run_module, run_probe

ITEMS = "INSERT INTO shop_item (name, quantity, sku, price) VALUES (?, ?, ?, ?)"
INVOICES = "INSERT INTO billing_invoice (amount, item_id, note) VALUES (?, ?, ?)"
# Two prices differ from the default 0, one SKU from the default "".
SOME_ITEMS = [("bolt", 1, "", 0), ("nut", 2, "N-1", 5), ("washer", 3, "", 7.5)]


def drops_of(document: Dict[str, Any]) -> List[tuple]:
    return [(d["app"], d["migration"], d["table"], d["column"], d["rows_with_data"]) for d in document["drops"]]


# --- drops in the plan ---------------------------------------------------------------------------


@pytest.mark.db_state("shop_0003")
def test_backwards_plan_that_drops_columns_holding_data_is_lossy(database: Path) -> None:
    execute(database, ITEMS, SOME_ITEMS)
    before = applied_rows(database)

    document = run_probe(database, {"action": "migrate", "app": "shop", "target": "0001"})

    assert document["kind"] == "lossy"
    assert drops_of(document) == [
        ("shop", "0003_item_price", "shop_item", "price", 2),
        ("shop", "0002_item_sku", "shop_item", "sku", 1),
    ]
    assert document["lossy_steps"] == [
        "shop 0003_item_price drops column shop_item.price (2 rows hold data)",
        "shop 0002_item_sku drops column shop_item.sku (1 row holds data)",
    ]
    assert "drops data: shop 0003_item_price drops column shop_item.price" in document["message"]
    assert "allow_lossy" in document["message"]
    assert [step["name"] for step in document["plan"]] == ["0003_item_price", "0002_item_sku"]
    assert applied_rows(database) == before


@pytest.mark.db_state("shop_0003")
def test_drops_without_data_are_listed_but_do_not_make_the_plan_lossy(database: Path) -> None:
    execute(database, ITEMS, [("bolt", 1, "", 0)])  # every value is the field's default

    document = run_probe(database, {"action": "migrate", "app": "shop", "target": "0001"})

    assert document["ok"], document
    assert drops_of(document) == [
        ("shop", "0003_item_price", "shop_item", "price", 0),
        ("shop", "0002_item_sku", "shop_item", "sku", 0),
    ]
    assert applied_rows(database) == ["shop.0001_initial"]


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_dropped_table_counts_every_row_and_runs_with_allow_lossy(database: Path) -> None:
    execute(database, ITEMS, SOME_ITEMS)
    execute(database, INVOICES, [(10, 1, ""), (20, 2, "paid"), (30, 3, "")])
    request = {"action": "migrate", "app": "billing", "target": "zero", "allow_drop_app": True}

    refused = run_probe(database, request)
    migrated = run_probe(database, dict(request, allow_lossy=True))

    assert refused["kind"] == "lossy"
    assert drops_of(refused) == [
        ("billing", "0002_invoice_note", "billing_invoice", "note", 1),
        ("billing", "0001_initial", "billing_invoice", None, 3),
    ]
    assert refused["lossy_steps"][-1] == "billing 0001_initial drops table billing_invoice (3 rows hold data)"
    assert migrated["ok"], migrated
    assert drops_of(migrated) == drops_of(refused)
    assert applied_rows(database, "billing") == []


@pytest.mark.db_state("shop_0003")
def test_forwards_plan_drops_nothing(database: Path) -> None:
    document = run_probe(database, {"action": "plan", "app": "billing"})

    assert document["ok"], document
    assert document["drops"] == []


def test_drop_sentences_say_what_is_dropped_and_how_many_rows_hold_data() -> None:
    column = {"app": "inventory", "migration": "0008_x", "table": "inventory_stockmovement", "column": "key"}
    table = {"app": "billing", "migration": "0001_initial", "table": "billing_invoice", "column": None}

    assert drop_sentence(dict(column, rows_with_data=12)) == (
        "inventory 0008_x drops column inventory_stockmovement.key (12 rows hold data)"
    )
    assert (
        drop_sentence(dict(table, rows_with_data=1))
        == "billing 0001_initial drops table billing_invoice (1 row holds data)"
    )
    uncounted = dict(column, rows_with_data=None, reason="counting failed: no such column")
    assert drop_sentence(uncounted).endswith(
        "(rows holding data could not be counted: counting failed: no such column)"
    )
    assert [drop_holds_data(dict(table, rows_with_data=rows)) for rows in (0, 3, None)] == [False, True, True]


def test_check_mode_shows_the_drops_and_lossy_lines_of_a_rollback_plan(host: DockerHost, capsys) -> None:
    host.start_from("shop_0003")
    execute(host.db, ITEMS, SOME_ITEMS)

    refused = run_module(capsys, check_mode=True, container="api", state="migrated", app="shop", target="0001")
    planned = run_module(
        capsys, check_mode=True, container="api", state="migrated", app="shop", target="0001", allow_lossy=True
    )

    assert refused["failed"] and refused["kind"] == "lossy"
    assert [drop["column"] for drop in refused["drops"]] == ["price", "sku"]
    assert "shop 0002_item_sku drops column shop_item.sku (1 row holds data)" in refused["lossy_steps"]
    assert planned["changed"] is True
    assert planned["drops"] == refused["drops"]
    assert planned["lossy_steps"] == [
        "shop 0003_item_price drops column shop_item.price (2 rows hold data)",
        "shop 0002_item_sku drops column shop_item.sku (1 row holds data)",
    ]
    assert applied_rows(host.db, "shop") == ["shop.%s" % name for name in SHOP[:3]]


# --- taking an app out of the database ----------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param({"app": "billing", "target": "zero"}, id="target-zero"),
        pytest.param({"targets": {"billing": "zero", "shop": "0003"}}, id="targets-zero"),
        pytest.param({"targets": {"shop": ["0003_item_price"]}, "targets_unlisted": "zero"}, id="unlisted-zero"),
        pytest.param({"app": "shop", "target": "0001"}, id="dependent-app"),
    ],
)
@pytest.mark.db_state("shop_0003_billing_leaf")
def test_unapplying_an_apps_initial_migration_is_refused_without_allow_drop_app(
    database: Path, request_: Dict[str, Any]
) -> None:
    before = applied_rows(database)

    document = run_probe(database, dict(request_, action="migrate", allow_lossy=True))

    assert document["kind"] == "drop_app"
    assert document["dropped_apps"] == ["billing"]
    assert "billing.0001_initial, the initial migration of billing" in document["message"]
    assert "allow_drop_app: true" in document["message"]
    assert ("billing", "0001_initial", "backwards") in [(s["app"], s["name"], s["direction"]) for s in document["plan"]]
    assert ("billing", "0001_initial", "billing_invoice", None, 0) in drops_of(document)
    assert applied_rows(database) == before


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_allow_drop_app_takes_the_app_to_zero(database: Path) -> None:
    document = run_probe(database, {"action": "migrate", "app": "billing", "target": "zero", "allow_drop_app": True})

    assert document["ok"], document
    assert applied_rows(database, "billing") == []


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_going_back_without_reaching_an_initial_migration_needs_no_allow_drop_app(database: Path) -> None:
    document = run_probe(database, {"action": "migrate", "app": "billing", "target": "0001"})

    assert document["ok"], document
    assert applied_rows(database, "billing") == ["billing.0001_initial"]


def test_check_mode_refuses_dropping_an_app_too_and_shows_the_plan(host: DockerHost, capsys) -> None:
    host.start_from("shop_0003_billing_leaf")
    args = dict(container="api", state="migrated", targets={"shop": ["0003_item_price"]}, targets_unlisted="zero")

    refused = run_module(capsys, check_mode=True, **args)
    planned = run_module(capsys, check_mode=True, allow_drop_app=True, **args)

    assert refused["failed"] and refused["kind"] == "drop_app"
    assert refused["dropped_apps"] == ["billing"]
    assert "pass allow_drop_app: true" in refused["msg"]
    assert [step["name"] for step in refused["plan"]] == ["0002_invoice_note", "0001_initial"]
    assert planned["changed"] is True
    assert planned["after"]["billing"] == []
    assert json.loads(host.calls()[-1][-1])["allow_drop_app"] is True
    assert applied_rows(host.db, "billing") == ["billing.%s" % name for name in BILLING]
