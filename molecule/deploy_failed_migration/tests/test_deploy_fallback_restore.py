"""1.1-irreversible, with the stock writer posting: 0008 cannot be unapplied, so the undo stops the API,
restores the pre-deploy backup and keeps the database it replaced. Every movement the API acknowledged is in
the live database or in the kept one the report names; 1.0 runs again; the message says where the rows are."""

import re

from depotix_checks import content_changes, ledger, psql, recorded, run_log, writer_figures
from undo_checks import final_message, kept_databases, movements, said, undo_reports, writer_notes

RELEASE = "1.1-irreversible"


def report(host) -> dict:
    return undo_reports(host, RELEASE)[0]


def kept(host) -> str:
    return report(host)["restore"]["kept_database"]


def test_the_way_back_was_refused_so_the_fallback_restore_ran(host):
    restore = report(host)["restore"]
    assert restore["outcome"] == "restored"
    assert restore["not_unapplied"] == ["inventory.0008_trim_movement_notes"]
    assert restore["error"] is None


def test_the_replaced_database_is_kept_under_the_name_the_report_gives(host):
    name = kept(host)
    assert re.fullmatch(r"depotix_replaced_\d{8}t\d{6}z", name)
    assert name in kept_databases(host)
    # It is the database the deploy left: the irreversible 0008 applied.
    applied = psql(host, "SELECT name FROM django_migrations WHERE app = 'inventory' ORDER BY id", name).split()
    assert applied[-1] == "0008_trim_movement_notes"


def test_the_live_database_is_the_pre_deploy_backup_and_1_0_runs_on_it(host):
    state = recorded(host, "state_after_fallback")
    assert (state["inventory"], state["image"]) == ("0007_populate_customer_numbers", "depotix-lab/api:1.0")


def test_the_ledger_entry_names_the_restored_backup_and_the_kept_database(host):
    entry = [e for e in ledger(host) if e["release"] == RELEASE][0]
    assert entry["outcome"] == "failed"
    assert "restored" in entry["note"] and f"kept as {kept(host)}" in entry["note"]
    assert report(host)["restore"]["backup"].endswith(".dump")


def test_every_row_from_before_the_deploy_kept_its_contents(host):
    assert content_changes(recorded(host, "checksums_after_2_0"), recorded(host, "checksums_after_fallback")) == {}


def test_writes_arrived_during_the_deploy_and_every_acknowledged_one_is_live_or_kept(host):
    summary, check = writer_figures(host, "fallback")
    acknowledged = set(summary["acknowledged_ids"])
    live, in_kept = writer_notes(host, "depotix", "fallback"), writer_notes(host, kept(host), "fallback")
    only_kept, only_live = acknowledged & (in_kept - live), acknowledged & (live - in_kept)
    print(f"writer fallback: sent {summary['sent']}, acknowledged {len(acknowledged)}, failed {summary['failed']} "
          f"{summary['failed_by']}; live and kept {len(acknowledged & live & in_kept)}, kept only {len(only_kept)}, "
          f"live only {len(only_live)}, in neither {len(acknowledged - live - in_kept)}")
    assert acknowledged - live - in_kept == set(), "acknowledged movements in neither database"
    # Acknowledged after the backup and before the stop: only the kept database has them.
    assert only_kept, "no movement was acknowledged between the pre-deploy backup and the stop"
    # Acknowledged by 1.0 on the restored database, after the undo.
    assert only_live, "no movement was acknowledged after the restore"
    # While the API was stopped for the restore, writes were refused, not lost.
    assert summary["failed"] > 0
    # The writer's own check (live database only) misses exactly those the kept database holds.
    assert set(check["lost_ids"]) == only_kept


def test_the_restored_database_handed_out_no_id_the_kept_one_holds(host):
    live, in_kept = movements(host, "depotix"), movements(host, kept(host))
    clashes = {key: (in_kept[key], live[key]) for key in set(live) & set(in_kept) if live[key] != in_kept[key]}
    assert clashes == {}


def test_the_api_was_stopped_before_the_restore():
    log = run_log("deploy_fallback")
    assert log.index("Stop the API, so that no write lands in the database the restore replaces") < log.index(
        "Restore the dump into a new database, check it, and swap it in")


def test_the_message_says_what_runs_which_database_is_live_and_where_the_rows_are(host):
    log, name = run_log("deploy_fallback"), kept(host)
    assert said(log, f"Deploying {RELEASE} failed at"), final_message(log)
    backup = report(host)["restore"]["backup"].split("/")[-1]
    assert said(log, f"pre-deploy backup {backup}"), final_message(log)
    assert said(log, "depotix is that backup now"), final_message(log)
    kept_line = f"The database it replaced is KEPT as {name}: every row written between the backup and"
    assert said(log, kept_line), final_message(log)
    assert said(log, f"discard-previous --database {name}"), final_message(log)
    assert said(log, "1.0 runs again and is healthy, on depotix"), final_message(log)
