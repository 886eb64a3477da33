"""0008 aborts on qty_base = 0: the deploy undoes itself by migrating back, 1.0 runs, nothing is lost.

This is the first of the scenario's three deploys; what it left was recorded before the
next one started (converge.yml), and those records are what is checked here.
"""

from depotix_checks import (assert_api_serves, assert_no_failed_request, assert_writer_lost_nothing, columns,
                            content_changes, ledger, recorded, run_log, writer_figures)
from undo_checks import final_message, said, undo_reports


def test_release_1_0_runs_again_and_is_healthy(host):
    assert recorded(host, "state_after_2_0")["image"] == "depotix-lab/api:1.0"
    assert_api_serves(host, "1.0")


def test_inventory_went_back_to_0007(host):
    assert recorded(host, "state_after_2_0")["inventory"] == "0007_populate_customer_numbers"


def test_the_idempotency_key_column_was_never_left_behind(host):
    assert "idempotency_key" not in columns(host, "inventory_stockmovement")


def test_every_row_is_still_there_with_its_contents(host):
    # Row by row (the undo's writer's rows apart: they are checked on their own); counts
    # would include them.
    assert content_changes(recorded(host, "checksums_before_deploy"), recorded(host, "checksums_after_2_0")) == {}


def test_ledger_marks_the_2_0_deploy_failed_and_1_0_current(host):
    entries = ledger(host)
    failed = [e for e in entries if e["release"] == "2.0"]
    assert [e["outcome"] for e in failed] == ["failed"]
    assert "qty_base" in failed[0]["note"] or "0008" in failed[0]["note"]
    assert [e["release"] for e in entries if e["outcome"] == "ok"] == ["1.0"]


def test_the_undo_migrated_back_and_restored_nothing(host):
    report = undo_reports(host, "2.0")[0]
    assert (report["migrations_back"], report["restore"]["outcome"]) == (True, "not needed")


def test_the_play_failed_saying_what_failed_and_what_runs_now():
    log = run_log("deploy")
    assert said(log, "Deploying 2.0 failed at"), final_message(log)
    assert said(log, "Undone: migrations back to"), final_message(log)
    assert said(log, "1.0 runs again and is healthy"), final_message(log)


def test_no_request_failed_through_the_edge_while_the_deploy_failed_and_was_undone(host):
    # The failed release never received traffic: the poller (10/s) and the writer (20/s)
    # went through the edge on 127.0.0.1:80 for the whole run.
    assert_no_failed_request(host, "undo", 50, 100)
    summary, _ = writer_figures(host, "undo")
    assert_writer_lost_nothing(host, "undo", {"the deploy": (summary["started_at"], summary["started_at"] + 5)},
                               must_succeed=("the deploy",))
