"""1.1-irreversible again, its pre-deploy dump spoiled once taken: the fallback restore fails on it, and the undo
still ends: 1.0 runs, the ledger has the failed deploy, nothing is lost, and the message says so."""

from depotix_checks import assert_api_serves, content_changes, ledger, recorded, run_log, writer_figures
from undo_checks import final_message, kept_databases, said, undo_reports

RELEASE = "1.1-irreversible"


def report(host) -> dict:
    return undo_reports(host, RELEASE)[1]


def test_the_restore_failed_on_the_spoiled_pre_deploy_dump(host):
    spoiled = recorded(host, "spoiled_dump")["spoiled"]
    restore = report(host)["restore"]
    assert spoiled and restore["backup"].endswith(spoiled)
    assert restore["outcome"] == "failed"
    assert "does not match its checksum" in restore["error"]


def test_nothing_was_kept_aside_and_the_live_database_is_the_one_the_deploy_left(host):
    assert report(host)["restore"]["kept_database"] is None
    assert kept_databases(host) == [undo_reports(host, RELEASE)[0]["restore"]["kept_database"]]
    assert recorded(host, "state_after_restore_fails")["inventory"] == "0008_trim_movement_notes"


def test_1_0_runs_again_and_is_healthy(host):
    assert recorded(host, "state_after_restore_fails")["image"] == "depotix-lab/api:1.0"
    assert_api_serves(host, "1.0")


def test_the_ledger_records_the_failed_deploy_and_its_failed_restore(host):
    last = ledger(host)[-1]
    assert (last["release"], last["outcome"]) == (RELEASE, "failed")
    assert "FAILED" in last["note"] and "nothing kept aside" in last["note"]


def test_no_row_was_lost_or_changed(host):
    assert content_changes(recorded(host, "checksums_after_fallback"),
                           recorded(host, "checksums_after_restore_fails")) == {}
    summary, check = writer_figures(host, "restore_fails")
    print(f"writer restore_fails: {check}")
    assert check["acknowledged"] > 0 and summary["failed"] > 0
    assert (check["lost"], check["found_in_database"]) == (0, check["acknowledged"])


def test_the_message_says_the_restore_failed_and_where_the_rows_are(host):
    log = run_log("deploy_restore_fails")
    assert said(log, f"Deploying {RELEASE} failed at"), final_message(log)
    spoiled = recorded(host, "spoiled_dump")["spoiled"]
    assert said(log, f"restoring the pre-deploy backup {spoiled} FAILED"), final_message(log)
    where = "depotix is still the database the deploy left, those migrations applied; every row is in it"
    assert said(log, where), final_message(log)
    assert said(log, "no database was kept aside"), final_message(log)
    assert said(log, "1.0 runs again and is healthy"), final_message(log)
    assert not said(log, "KEPT as"), final_message(log)
