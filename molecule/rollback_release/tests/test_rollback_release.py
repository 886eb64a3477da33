"""Runbook scenario 2 twice: 2.1 -> 2.0 -> 1.0, migrations unapplied with the image that has them."""

from depotix_checks import (applied_migrations, assert_api_serves, check_constraints, columns, killed_at, ledger,
                            recorded, run_log, table_counts)


def test_first_rollback_went_from_2_1_to_2_0_unapplying_0009(host):
    state = recorded(host, "state_after_first")
    assert (state["image"], state["inventory"]) == ("depotix-lab/api:2.0", "0008_add_idempotency_and_constraints")


def test_second_rollback_runs_1_0_healthy(host):
    assert_api_serves(host, "1.0")


def test_schema_is_back_at_0007_without_0008_or_0009_traces(host):
    assert applied_migrations(host, "inventory")[-1] == "0007_populate_customer_numbers"
    assert not {"idempotency_key"} & columns(host, "inventory_stockmovement")
    assert "location" not in columns(host, "inventory_inventoryitem")
    assert "inventory_inventoryitem_quantity_non_negative" not in check_constraints(host, "inventory_inventoryitem")


def test_ledger_pops_back_to_1_0(host):
    entries = [(e["release"], e["action"], e["outcome"]) for e in ledger(host)]
    assert entries[-2:] == [("2.0", "rollback", "ok"), ("1.0", "rollback", "ok")]


def test_no_row_was_lost(host):
    assert table_counts(host) == recorded(host, "counts_before_rollback")


def test_the_second_rollback_was_killed_during_the_swap_and_resumed():
    assert killed_at("scenario2_killed").startswith("TASK [api : Ensure the API container runs the release")
    assert "PLAY RECAP" not in run_log("scenario2_killed")
    assert "PLAY RECAP" in run_log("scenario2_resumed")


def test_downtime_was_measured_and_bounded(host):
    # The second poller spans the killed run, the time until the rerun swaps, and the rerun.
    for name, bound in (("first", 30), ("second", 90)):
        poll = recorded(host, f"poller_{name}")
        print(f"rollback {name}: {poll}")
        assert poll["samples"] > 50
        assert poll["non_200_seconds"] < bound


def test_other_requests_were_refused_while_the_rollback_was_in_progress():
    for name in ("in_progress_other_target", "in_progress_other_scenario"):
        log = run_log(name)
        assert "A scenario 2 rollback from 2.0 to 1.0 is in progress" in log, name
        assert "-e resume=discard" in log and "Nothing was changed." in log
        assert "Take a verified backup before the first change" not in log


def test_an_unreadable_record_stopped_the_run_and_resume_discard_forgot_it(host):
    assert "records an interrupted rollback but cannot be read" in run_log("in_progress_unreadable")
    assert "Take a verified backup before the first change" not in run_log("in_progress_unreadable")
    assert "TASK [Forget the interrupted rollback (-e resume=discard)]" in run_log("in_progress_discarded")
    assert not host.file("/home/deploy/Depotix/rollback-in-progress.json").exists
