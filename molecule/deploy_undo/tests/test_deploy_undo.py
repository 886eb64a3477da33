"""deploy.yml undoes itself: 0008 aborting on qty_base = 0, then 2.0-broken crashing at start."""

from depotix_checks import (applied_migrations, check_constraints, columns, container_health, container_image, health,
                            ledger, recorded, run_log, table_counts)


# ------------------------------------------------------------------ 2.0, 0008 aborts


def test_after_the_failed_migration_1_0_ran_at_0007(host):
    assert recorded(host, "state_after_failed_migration")["image"] == "depotix-lab/api:1.0"
    assert recorded(host, "state_after_failed_migration")["inventory"] == "0007_populate_customer_numbers"


def test_the_failed_migration_lost_no_row(host):
    assert recorded(host, "counts_after_failed_migration") == recorded(host, "counts_before_failed_migration")


def test_the_failed_migration_play_said_what_failed_and_what_runs_now():
    log = run_log("deploy_failed_migration")
    assert "Deploying 2.0 failed at" in log
    assert "1.0 runs again and is healthy" in log


# ------------------------------------------------------------------ 2.0-broken, crash


def test_release_1_0_runs_again_and_is_healthy(host):
    assert container_image(host, "api") == "depotix-lab/api:1.0"
    assert container_health(host, "api") == "healthy"
    status, body = health(host)
    assert (status, body.get("release")) == (200, "1.0")


def test_0008_was_applied_then_unapplied_with_the_broken_image(host):
    assert applied_migrations(host, "inventory")[-1] == "0007_populate_customer_numbers"
    assert "idempotency_key" not in columns(host, "inventory_stockmovement")
    assert "inventory_inventoryitem_quantity_non_negative" not in check_constraints(host, "inventory_inventoryitem")
    assert check_constraints(host, "inventory_stockmovement")["inventory_stockmovement_qty_base_non_negative"] == \
        "CHECK ((qty_base >= 0))"


def test_the_crash_lost_no_row(host):
    assert table_counts(host) == recorded(host, "counts_before_crash")


def test_the_crash_play_said_what_failed_and_what_runs_now():
    log = run_log("deploy_crash")
    assert "Deploying 2.0-broken failed at" in log
    assert "1.0 runs again and is healthy" in log
    assert "health" in log.split("Deploying 2.0-broken failed at", 1)[1][:300].lower()


# ------------------------------------------------------------------ the ledger


def test_the_ledger_records_both_failures_and_only_1_0_as_good(host):
    entries = ledger(host)
    assert [(e["release"], e["outcome"]) for e in entries[-2:]] == [("2.0", "failed"), ("2.0-broken", "failed")]
    assert "qty_base" in entries[-2]["note"] or "0008" in entries[-2]["note"]
    assert "health" in entries[-1]["note"].lower()
    assert [e["release"] for e in entries if e["outcome"] == "ok"] == ["1.0"]
