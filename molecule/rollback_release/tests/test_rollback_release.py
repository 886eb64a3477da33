"""Runbook scenario 2 twice: 2.1 -> 2.0 -> 1.0, migrations unapplied with the image that has them."""

import pytest

from depotix_checks import (applied_migrations, assert_api_serves, assert_dropped_data_accounted,
                            assert_no_failed_request, assert_remote_work_killed, assert_writer_lost_nothing,
                            cells_holding_data, check_constraints, columns, content_changes, killed_at, ledger,
                            recorded, report_window, rollback_reports, run_log, writer_figures)

# The runs of scenario 2 that change something, in order, as run_playbook*.yml kept their output.
RUNS = ("scenario2_first", "scenario2_killed", "scenario2_resumed")


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


def test_every_row_kept_its_contents_and_the_dropped_columns_were_announced(host):
    before, after = recorded(host, "checksums_before_rollback"), recorded(host, "checksums_after_rollback")
    # Unapplying 0009 and 0008 drops location and idempotency_key, which the converge filled.
    assert cells_holding_data(before, "inventory_inventoryitem", "location") > 0
    assert cells_holding_data(before, "inventory_stockmovement", "idempotency_key") > 0
    # Every other value of every row of every table is as it was (the writer's rows apart).
    assert content_changes(before, after) == {"inventory_inventoryitem": {"columns_dropped": ["location"]},
                                              "inventory_stockmovement": {"columns_dropped": ["idempotency_key"]}}
    # What went was announced with its rows: by the first run's report, and by the plan
    # the killed run printed (the rerun resumes after the migrations, with nothing left to drop).
    print(assert_dropped_data_accounted(before, after, rollback_reports(host, "2"), [run_log(n) for n in RUNS]))


def test_every_movement_acknowledged_during_the_rollbacks_is_in_the_database(host):
    first, resumed = rollback_reports(host, "2")
    assert_writer_lost_nothing(host, "first", {"the first rollback": report_window(first)},
                               must_succeed=("the first rollback",))
    summary, _ = writer_figures(host, "second")
    windows = {"the killed rollback": (summary["started_at"], report_window(resumed)[0]),
               "the resumed rollback": report_window(resumed)}
    assert_writer_lost_nothing(host, "second", windows, must_succeed=tuple(windows))


def test_the_second_rollback_was_killed_during_the_swap_and_resumed():
    assert killed_at("scenario2_killed").startswith(
        "TASK [api : Ensure the API container runs the release, never migrating at start, api-previous")
    assert "PLAY RECAP" not in run_log("scenario2_killed")
    assert "PLAY RECAP" in run_log("scenario2_resumed")


def test_the_kill_reached_the_docker_container_module_on_the_server():
    # The module's interpreter, started by the connection's docker exec (pipelined: the module on its stdin).
    assert_remote_work_killed("scenario2_killed", "on the server", r"^/usr/bin/python3(\.[0-9]+)?$")


@pytest.mark.parametrize("name", ["deploys", "first", "second"])
def test_no_request_failed_through_the_edge_during_any_switch(host, name):
    # deploys: 1.0 -> 2.0 -> 2.1; first: the rollback 2.1 -> 2.0; second: the killed
    # rollback 2.0 -> 1.0, the refused requests and the resumed run. Both the poller (10/s)
    # and the writer (20/s) went through the edge on 127.0.0.1:80.
    assert_no_failed_request(host, name, 100, 200)


def test_every_movement_acknowledged_during_the_deploys_is_in_the_database(host):
    summary, _ = writer_figures(host, "deploys")
    assert_writer_lost_nothing(host, "deploys", {"the deploys": (summary["started_at"], summary["started_at"] + 30)},
                               must_succeed=("the deploys",))


def test_the_rollbacks_took_the_traffic_first_and_said_so(host):
    for report in rollback_reports(host, "2"):
        assert report["order"]["order"] == "traffic first", report["order"]
        assert float(report["order"]["writes_refused_seconds"]) == 0


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
