"""0008 aborts on qty_base = 0: the deploy undoes itself, 1.0 runs, nothing is lost."""

from depotix_checks import applied_migrations, assert_api_serves, columns, ledger, recorded, run_log, table_counts


def test_release_1_0_runs_again_and_is_healthy(host):
    assert_api_serves(host, "1.0")


def test_inventory_is_still_at_0007(host):
    assert applied_migrations(host, "inventory")[-1] == "0007_populate_customer_numbers"


def test_the_idempotency_key_column_was_never_left_behind(host):
    assert "idempotency_key" not in columns(host, "inventory_stockmovement")


def test_every_row_is_still_there(host):
    assert table_counts(host) == recorded(host, "counts_before_deploy")


def test_ledger_marks_the_2_0_deploy_failed_and_1_0_current(host):
    entries = ledger(host)
    assert (entries[-1]["release"], entries[-1]["outcome"]) == ("2.0", "failed")
    assert "qty_base" in entries[-1]["note"] or "0008" in entries[-1]["note"]
    assert [e["release"] for e in entries if e["outcome"] == "ok"] == ["1.0"]


def test_the_play_failed_saying_what_failed_and_what_runs_now():
    log = run_log("deploy")
    assert "Deploying 2.0 failed at" in log
    assert "1.0 runs again and is healthy" in log
