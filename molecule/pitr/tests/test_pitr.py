"""Point-in-time recovery with pgBackRest (converge.yml says what ran, in order).

Movements are compared row by row with their commit times (track_commit_timestamp):
a recovery to T must bring back exactly those committed by T, each with the content it
had; every other table is compared by the checksums of its rows.
"""

from __future__ import annotations

import json
import re

from depotix_checks import (applied_migrations, assert_api_serves, assert_remote_work_killed, content_changes,
                            killed_at, ledger, recorded, run_log, writer_figures)

LOG_FILE = "/var/log/depotix-backup.log"
REPO = "/home/deploy/pgbackrest"


def said(name: str) -> str:
    """A run's output with its whitespace folded (the YAML result format wraps long messages)."""
    return " ".join(run_log(name).split())


def metric(text: str, name: str) -> float:
    match = re.search(rf"^depotix_backup_{name} (\S+)$", text, re.M)
    assert match, f"the status file has no {name}"
    return float(match.group(1))


def target_time(host) -> str:
    """T as the database wrote it ('2026-12-01 04:01:26.246887+00'), in the ISO form the records use."""
    text = host.file("/root/target_time.txt").content_string.strip()
    return text.replace(" ", "T") + ":00"


def test_site_created_the_stanza_and_took_the_first_full_backup(host):
    info = recorded(host, "pitr_info_final")
    assert info["stanza"] == "depotix" and info["status"] == "ok"
    types = [b["type"] for b in info["backups"]]
    assert types[0] == "full" and "incr" in types, types
    assert host.file(REPO).mode == 0o750 and host.file(REPO).uid == 999


def test_stall_kept_postgres_writing_and_the_wal_waiting(host):
    stall = recorded(host, "stall")
    assert stall["check_rc"] == 1
    # PostgreSQL went on committing, and kept the segments it could not archive.
    assert stall["archiver"]["rows"] == 4
    assert stall["archiver"]["failed_count"] > 0 and stall["archiver"]["last_failed_wal"]
    assert stall["ready_segments"] >= 3
    log = host.file(LOG_FILE).content_string
    assert re.search(r"pitr-check: FAILED: pgbackrest check failed \(exit \d+\): .*ERROR", log), log[-2000:]


def test_status_file_reported_the_stall_and_the_catch_up(host):
    during = host.file("/root/status_during_stall.prom").content_string
    after = host.file("/root/status_after_stall.prom").content_string
    assert metric(during, "pitr_wal_archive_failing") == 1
    assert metric(after, "pitr_wal_archive_failing") == 0
    assert metric(after, "pitr_wal_archived_age_seconds") < 30
    assert host.file("/root/ready_after_stall.txt").content_string.strip() == "0"


def test_verify_found_no_gap_after_the_stall(host):
    verified = recorded(host, "verify_after_stall")
    assert verified["verified"] is True and verified["archiver"]["failing"] is False


def test_scheduled_incremental_logged_one_line(host):
    lines = [line for line in host.file(LOG_FILE).content_string.splitlines() if " pitr-backup: " in line]
    assert len(lines) == 1 and " pitr-backup: ok " in lines[0], lines
    assert json.loads(lines[0].split(" pitr-backup: ok ", 1)[1])["type"] == "incr"
    status = host.file("/var/lib/node_exporter/textfile_collector/depotix_backup.prom").content_string
    assert metric(status, "pitr_incr_last_success_timestamp_seconds") > 0
    assert metric(status, "pitr_last_run_success") == 1


def test_weekly_drill_recovered_to_its_point_and_matched_the_live_counts(host):
    lines = [line for line in host.file(LOG_FILE).content_string.splitlines() if " pitr-drill: " in line]
    assert len(lines) == 1 and " pitr-drill: ok " in lines[0], lines
    drill = json.loads(lines[0].split(" pitr-drill: ok ", 1)[1])
    assert drill["outcome"] == "passed" and drill["tables"] >= 10 and drill["rows"] >= 50, drill
    assert drill["point"]["name"].startswith("drill_")
    # The scratch cluster is gone.
    assert host.run("docker container inspect depotix-pitr-drill").rc != 0
    assert host.run("docker volume inspect depotix-pitr-drill").rc != 0
    status = host.file("/var/lib/node_exporter/textfile_collector/depotix_backup.prom").content_string
    assert metric(status, "pitr_drill_last_run_success") == 1


def test_writes_arrived_on_both_sides_of_t(host):
    summary, check = writer_figures(host, "pitr")
    assert check["lost"] == 0 and check["acknowledged"] >= 150, check
    t = target_time(host)
    writer = [m for m in recorded(host, "movements_before_change") if m["note"].startswith("writer:pitr:")]
    before, after = [m for m in writer if m["committed"] <= t], [m for m in writer if m["committed"] > t]
    print(f"writer movements committed by T: {len(before)}, after T: {len(after)}")
    assert len(before) >= 60 and len(after) >= 60


def test_recovery_to_t_brought_back_exactly_what_was_committed_by_t(host):
    t = target_time(host)
    before = recorded(host, "movements_before_change")
    after = recorded(host, "movements_after_recovery")
    expected = [m for m in before if m["committed"] <= t]
    # Every movement committed by T, with every column as it was; none committed after T.
    assert after == expected
    assert len(before) > len(expected)


def test_recovery_to_t_undid_the_destructive_change_in_every_table(host):
    assert content_changes(recorded(host, "checksums_before_change"), recorded(host, "checksums_after_recovery")) == {}


def test_recovery_to_t_said_what_it_used_and_left_the_api_healthy(host):
    check = said("recover_to_t_check")
    assert re.search(r"Would recover database depotix to the time .* from backup set \d{8}-\d{6}F\S* \(\w+, ended .*\) "
                     r"and WAL [0-9A-F]{24} onwards .* the repository covers .* Nothing was changed \(--check\)",
                     check), check
    run = said("recover_to_t")
    assert "Recovered depotix to time" in run and "Migrations match depotix-lab/api:1.0" in run
    assert re.search(r"The state before: restore point restore_1\.0_\d{8}T\d{6}Z", run)


def test_killed_recovery_was_killed_while_pgbackrest_restored(host):
    assert "Restore the backup set into the new volume" in killed_at("recover_to_t_killed")
    assert_remote_work_killed("recover_to_t_killed", "depotix-pitr-restore", r"pgbackrest")
    left = host.file("/root/after_kill.txt").content_string.split("\n")
    # The database stopped and kept aside with its data; the API stopped; a new volume begun.
    assert "server-postgres-1-before-restore exited" in left, left
    assert not any(line.startswith("server-postgres-1 ") for line in left), left
    assert len([line for line in left if line.startswith("depotix_pgdata")]) == 2, left


def test_rerun_put_the_database_back_and_finished_the_recovery(host):
    run = said("recover_to_t")
    assert "An interrupted recovery kept server-postgres-1-before-restore aside" in run
    assert "Recovered depotix to time" in run


def test_refusals_changed_nothing(host):
    too_old = said("refused_too_old")
    assert re.search(r"time target 2020-01-01 00:00:00\+00:00 .* is outside what the repository covers: from "
                     r"\d{4}-\d\d-\d\dT\S+ \(the end of the oldest backup\) to \S+ Nothing was changed", too_old), \
        too_old
    assert "Say one point-in-time target" in said("refused_two_targets")
    before, after = host.file("/root/db_around_refusals.txt").content_string.split("\n")[:2]
    assert before == after


def test_recovery_to_the_deploys_restore_point(host):
    deploy = said("deploy_2_0")
    point = re.search(r"Restore point before the deploy: (deploy_1\.0_\d{8}T\d{6}Z)", deploy).group(1)
    run = said("recover_to_deploy_point")
    assert f"Recovered depotix to name {point}" in run
    # The schema and the rows of just before the deploy, and the release that ran then.
    assert applied_migrations(host, "inventory")[-1] == "0007_populate_customer_numbers"
    assert content_changes(recorded(host, "checksums_before_deploy"), recorded(host, "checksums_after_point")) == {}
    assert_api_serves(host, "1.0")
    entries = ledger(host)
    assert entries[-1]["action"] == "restore" and entries[-1]["release"] == "1.0"
    assert entries[-1]["note"].startswith("restore point restore_2.0_")
    points = [p["name"] for p in recorded(host, "pitr_info_final")["restore_points"]]
    assert point in points and any(p.startswith("restore_2.0_") for p in points)


def test_the_old_data_volumes_are_gone_and_the_live_one_is_recorded(host):
    live = host.check_output("cat /home/deploy/Depotix/postgres-volume")
    volumes = host.check_output("docker volume ls --quiet --filter name=depotix_pgdata").split()
    assert volumes == [live], volumes
    mounts = host.check_output("docker inspect --format '{{range .Mounts}}{{.Name}} {{end}}' server-postgres-1")
    assert live in mounts.split()
    assert host.run("docker container inspect server-postgres-1-before-restore").rc != 0
