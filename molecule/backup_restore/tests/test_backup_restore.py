"""backup.yml, the host's schedule and restore.yml on a 1.0 stack (converge.yml says what ran).

Rows are compared as every table's count and a checksum of its ordered rows, recorded on
the server at each step (/root/*.json); the runs' output is kept on the controller.
"""

from __future__ import annotations

import json
import re

import pytest
from depotix_checks import (BACKUP_DIR, applied_migrations, assert_remote_work_killed, container_health, health,
                            killed_at, recorded, run_log)

CRON_FILE = "/etc/cron.d/depotix-backup"
LOG_FILE = "/var/log/depotix-backup.log"




def said(name: str) -> str:
    """A run's output with its whitespace folded (the YAML result format wraps long messages)."""
    return " ".join(run_log(name).split())


def text(host, path: str) -> str:
    return host.file(path).content_string


def dumps_in(listing: dict) -> list[str]:
    return [d["file"] for d in listing["dumps"]]


def backup_dir_files(host) -> set[str]:
    return set(host.check_output(f"ls -A {BACKUP_DIR}").split()) - {".depotix-backup.lock"}


def drilled_dump() -> str:
    """The dump backup.yml -e drill=true took (and drilled)."""
    match = re.search(r"Drill passed: (depotix_\w+_1\.0\.dump) restored into a scratch database", run_log("backup"))
    assert match, "backup.yml reported no passed drill"
    return match.group(1)


@pytest.fixture(scope="module")
def scheduled_dump(host) -> str:
    """The dump the daily cron job took (the one the restores go back to)."""
    match = re.search(r"scheduled: ok (\{.*\})", text(host, LOG_FILE))
    assert match, "the scheduled job logged no success"
    return json.loads(match.group(1))["dump"]["file"]


# ---------------------------------------------------------------------------- schedule


@pytest.mark.parametrize(("name", "schedule", "command"), [
    ("depotix daily backup", "0 2 * * *", "scheduled"),
    ("depotix weekly restore drill", "30 3 * * 0", "drill latest"),
])
def test_the_cron_file_schedules_the_daily_job_and_the_weekly_drill(host, name, schedule, command):
    cron = text(host, CRON_FILE)
    assert f"#Ansible: {name}\n{schedule} root /usr/local/sbin/depotix-backup --log {LOG_FILE} {command} " in cron


def test_the_scheduled_job_logged_a_verified_dump_labelled_with_the_ledgers_release(host, scheduled_dump):
    assert re.fullmatch(r"depotix_\d{8}T\d{6}Z_1\.0\.dump", scheduled_dump)
    assert host.file(LOG_FILE).mode == 0o600


def test_dump_files_are_private(host):
    assert host.file(BACKUP_DIR).mode == 0o700
    for name in backup_dir_files(host):
        assert host.file(f"{BACKUP_DIR}/{name}").mode == 0o600, name


# ---------------------------------------------------------------------------- restore


def test_the_restore_brought_back_every_row_as_it_was_at_backup_time(host):
    assert recorded(host, "rows_before_restore") != recorded(host, "rows_at_backup")
    assert recorded(host, "rows_after_restore") == recorded(host, "rows_at_backup")


def test_the_killed_restore_had_stopped_the_api_and_left_the_live_database_untouched(host):
    after = recorded(host, "after_kill")
    # The edge answers 503 with Retry-After while the API is out for the restore.
    assert re.fullmatch(r"HTTP/1\.1 503 Service Unavailable retry-after: 10", after.pop("edge"), re.IGNORECASE)
    assert after == {"api": "exited", "marker": True, "staging_databases": 1, "crashes": 0}
    assert recorded(host, "rows_after_kill") == recorded(host, "rows_before_restore")


def test_the_kill_reached_pg_restore_in_the_database_container_and_it_is_gone():
    assert killed_at("restore_killed").startswith("TASK [backup : Restore the dump into a new database")
    assert "PLAY RECAP" not in run_log("restore_killed")
    assert_remote_work_killed("restore_killed", "in container server-postgres-1", r"^pg_restore --exit-on-error ")


def test_the_killed_run_left_a_record_of_its_request_release_start_and_safety_dump(host, scheduled_dump):
    record = recorded(host, "marker_after_kill")
    assert record["dump"] == scheduled_dump
    assert record["args"] == {"backup": "latest", "migrate": False, "allow_unrecorded": False}
    assert (record["release"], record["image"]) == ("1.0", "depotix-lab/api:1.0")
    assert re.fullmatch(r"depotix_\w+Z_1\.0_before_restore\.dump", record["safety_backup"])
    assert record["runs"] == [{"started": record["started"], "safety_backup": record["safety_backup"]}]
    assert "failed" not in record  # killed: no rescue ran
    assert record["safety_backup"] in dumps_in(recorded(host, "dumps_after_kill"))


def test_a_rerun_with_other_arguments_is_refused_saying_what_is_in_progress(host, scheduled_dump):
    log = said("restore_other_request")
    record = recorded(host, "marker_after_kill")
    assert f"A restore of {scheduled_dump} is in progress on depotix-backup_restore" in log
    assert f"started {record['started']}, 1 run(s) so far, the last was interrupted (killed)" in log
    assert f"Its first safety dump {record['safety_backup']} holds the state before it" in log
    assert "Run ansible-playbook restore.yml -e backup=latest to finish it" in log
    assert "or add -e resume=discard to forget it (nothing is undone)" in log and "Nothing was changed." in log
    assert "Take a safety dump" not in log and "Stop the API" not in log
    assert text(host, "/root/marker_after_refusal.json") == text(host, "/root/marker_after_kill.json")


def test_the_same_request_again_took_a_new_safety_dump_then_finished(host, scheduled_dump):
    rerun = said("restore")
    first = recorded(host, "marker_after_kill")["safety_backup"]
    assert f"whose first safety dump {first} holds the state before it" in rerun  # it resumed that restore
    taken = re.search(r"took the safety dump (depotix_\w+Z_1\.0_before_restore\.dump) first", rerun)
    assert taken, "the rerun reported no safety dump of its own"
    # A new dump, taken after the kill (not among the dumps the killed run left), kept with the first one.
    assert taken.group(1) != first and taken.group(1) not in dumps_in(recorded(host, "dumps_after_kill"))
    assert {first, taken.group(1)} <= set(dumps_in(recorded(host, "dumps_before_retention")))
    assert re.search(rf"Restored {scheduled_dump} into depotix in .*every count equal to the record", rerun)
    assert f"The state before: {first}" in rerun
    assert re.search(r"Writes were refused for [0-9.]+ s \(the edge answered 503 with Retry-After\)", rerun)


def test_no_restore_is_left_in_progress(host):
    assert not host.file(f"{BACKUP_DIR}/.restore-in-progress.json").exists
    out = host.check_output("docker exec server-postgres-1 psql -X -A -t -U postgres -d postgres -c "
                            "\"SELECT count(*) FROM pg_database WHERE datname LIKE 'depotix\\_%'\"")
    assert out == "0"


def test_the_api_runs_healthy_on_the_restored_database(host):
    assert container_health(host, "api") == "healthy"
    status, body = health(host)
    assert (status, body.get("database")) == (200, True)


# ---------------------------------------------------------------------------- migrations


def test_a_dump_older_than_the_image_is_refused_without_migrate():
    log = run_log("restore_behind")
    assert re.search(r"depotix_\w+_1\.0-at-0006\.dump \(release 1\.0\) is older than depotix-lab/api:1\.0", log)
    assert '{"inventory": ["0007_populate_customer_numbers"]}' in log
    assert "Rerun with -e migrate=true" in log and "Nothing was changed." in log
    assert "Take a safety dump" not in log


def test_with_migrate_the_older_dump_is_restored_and_migrated_forward(host):
    log = run_log("restore_migrate")
    assert re.search(r"Restored depotix_\w+_1\.0-at-0006\.dump into depotix .*Migrated forward: "
                     r"0007_populate_customer_numbers\.", log)
    assert applied_migrations(host, "inventory")[-1] == "0007_populate_customer_numbers"


# ---------------------------------------------------------------------------- refused restores


def test_check_mode_says_what_it_would_restore_and_changes_nothing(host, scheduled_dump):
    log = run_log("restore_check")
    assert f"Would restore {scheduled_dump} (label 1.0" in log
    assert "Nothing was changed (--check)." in log
    assert re.search(r"depotix-backup_restore\s*: ok=\d+\s+changed=0 ", log)


def test_a_damaged_dump_is_refused_before_anything_is_touched(host):
    log = run_log("restore_corrupt")
    assert "depotix_20000101T000000Z_corrupt.dump does not match its checksum" in log
    assert "Nothing was changed." in log
    assert "Take a safety dump" not in log and "Stop the API" not in log


@pytest.mark.parametrize("part", ["files.txt", "rows.json", "api.txt"])
def test_refused_and_check_mode_restores_changed_nothing(host, part):
    assert text(host, f"/root/before_refusals_{part}") == text(host, f"/root/after_refusals_{part}")


# ---------------------------------------------------------------------------- failed backups


def test_a_backup_fails_clearly_when_the_database_goes_down_during_pg_dump():
    log = run_log("backup_db_down")
    assert "pg_dump failed" in log
    assert "no partial dump was kept and earlier dumps are untouched" in log


def test_the_database_going_down_left_no_partial_dump_and_touched_no_file(host):
    assert text(host, "/root/files_before_db_down.txt") == text(host, "/root/files_after_db_down.txt")


def test_a_full_backup_directory_fails_the_dump_clearly(host):
    out = text(host, "/root/full_dump.out")
    assert "the backup directory /home/deploy/backups-full is full" in out
    assert "no partial dump was kept and earlier dumps are untouched" in out
    assert out.rstrip().endswith("exit 1")


def test_the_full_directory_keeps_its_earlier_dump_and_no_partial_file(host):
    before, after = text(host, "/root/files_before_full.txt"), text(host, "/root/files_after_full.txt")
    assert before == after
    assert len(before.splitlines()) == 3  # the earlier dump, its .sha256 and its .json


# ---------------------------------------------------------------------------- retention, offsite, drill


def test_retention_keeps_exactly_the_two_newest_and_the_newest_of_yesterday(host):
    before = recorded(host, "dumps_before_retention")["dumps"]  # newest first
    safety = [d["file"] for d in before if d["label"].endswith("before_restore")]
    yesterday = sorted(d["file"] for d in before if re.search(r"T0000[12]0Z_1\.0\.dump$", d["file"]))
    # One per restore run that got that far: the killed one, its rerun, and the migrated one.
    assert len(safety) == 3 and len(yesterday) == 2
    kept = {drilled_dump(), safety[0], yesterday[1]}
    assert backup_dir_files(host) == {name + suffix for name in kept for suffix in ("", ".sha256", ".json")}


def test_the_drill_of_the_new_dump_passed(host):
    assert drilled_dump() not in dumps_in(recorded(host, "dumps_before_retention"))


def test_verified_dumps_were_copied_offsite_with_their_sidecars(host, scheduled_dump):
    offsite = set(host.check_output("ls /root/offsite").split())
    for name in (scheduled_dump, drilled_dump()):
        assert {name, f"{name}.sha256", f"{name}.json"} <= offsite
        assert host.run(f"cd /root/offsite && sha256sum -c {name}.sha256").rc == 0


def test_backup_yml_verified_the_new_dump_by_restoring_it():
    log = run_log("backup")
    assert "TASK [Verify the new dump by restoring it into a scratch database (-e verify=restore)]" in log
    assert '"--restore"' in log
