"""2.0-broken crashes at start: the health gate fails, 0008 is unapplied, 1.0 runs again."""

from depotix_checks import (applied_migrations, assert_api_serves, check_constraints, columns, ledger, recorded,
                            run_log, table_counts)


def test_release_1_0_runs_again_and_is_healthy(host):
    assert_api_serves(host, "1.0")


def test_0008_was_applied_then_unapplied_with_the_broken_image(host):
    assert applied_migrations(host, "inventory")[-1] == "0007_populate_customer_numbers"
    assert "idempotency_key" not in columns(host, "inventory_stockmovement")
    assert "inventory_inventoryitem_quantity_non_negative" not in check_constraints(host, "inventory_inventoryitem")
    assert check_constraints(host, "inventory_stockmovement")["inventory_stockmovement_qty_base_non_negative"] == \
        "CHECK ((qty_base >= 0))"


def test_every_row_is_still_there(host):
    assert table_counts(host) == recorded(host, "counts_before_deploy")


def test_ledger_marks_the_broken_deploy_failed_at_the_health_gate(host):
    last = ledger(host)[-1]
    assert (last["release"], last["outcome"]) == ("2.0-broken", "failed")
    assert "health" in last["note"].lower()


def test_the_play_failed_saying_what_failed_and_what_runs_now():
    log = run_log("deploy")
    assert "Deploying 2.0-broken failed at" in log
    assert "1.0 runs again and is healthy" in log
