"""Runbook scenario 1 after a 2.0 deploy: 0008 unapplied with its own image, nothing lost."""

import json

import pytest
from depotix_checks import (PROJECT_DIR, applied_migrations, assert_dropped_data_accounted, assert_writer_lost_nothing,
                            assert_remote_work_killed, cells_holding_data, check_constraints, columns, content_changes,
                            health, killed_at,
                            recorded, report_window, run_log, writer_figures)

# The runs of scenario 1, in order, as run_playbook*.yml kept their output.
RUNS = ("scenario1_killed", "scenario1_resumed", "scenario1_again")


def reports(host, scenario: str) -> list[dict]:
    names = host.check_output(f"ls {PROJECT_DIR}/reports").split()
    return [json.loads(host.file(f"{PROJECT_DIR}/reports/{n}").content_string)
            for n in sorted(names) if n.startswith(f"rollback_scenario{scenario}_")]


def test_0008_is_unapplied(host):
    assert applied_migrations(host, "inventory")[-1] == "0007_populate_customer_numbers"


def test_idempotency_key_is_gone(host):
    assert "idempotency_key" not in columns(host, "inventory_stockmovement")


@pytest.mark.parametrize(("table", "present", "absent"), [
    ("inventory_stockmovement", "inventory_stockmovement_qty_base_non_negative", "inventory_stockmovement_qty_base_positive"),
    ("inventory_inventoryitem", None, "inventory_inventoryitem_quantity_non_negative"),
])
def test_0008_constraints_are_removed(host, table, present, absent):
    constraints = check_constraints(host, table)
    assert absent not in constraints
    if present:
        assert constraints[present] == "CHECK ((qty_base >= 0))"


def test_api_is_healthy(host):
    assert health(host)[0] == 200


def test_every_row_kept_its_contents_and_the_dropped_keys_were_announced(host):
    before, after = recorded(host, "checksums_before_rollback"), recorded(host, "checksums_after_rollback")
    # Unapplying 0008 drops idempotency_key, and the converge put keys there: data went.
    assert cells_holding_data(before, "inventory_stockmovement", "idempotency_key") > 0
    # Every other value of every row of every table is as it was (the writer's rows apart).
    assert content_changes(before, after) == {"inventory_stockmovement": {"columns_dropped": ["idempotency_key"]}}
    # The plan and report said what goes, with as many rows as held data.
    print(assert_dropped_data_accounted(before, after, reports(host, "1"), [run_log(name) for name in RUNS]))


def test_every_movement_acknowledged_during_the_runs_is_in_the_database(host):
    resumed, again = reports(host, "1")
    summary, _ = writer_figures(host, "scenario1")
    # The 2.0 code still serves once the schema is back at 0007: its writes fail (500) from
    # then on, so the last run is only required to have been written against.
    windows = {"the killed run": (summary["started_at"], report_window(resumed)[0]),
               "the rerun": report_window(resumed), "the run with nothing to do": report_window(again)}
    assert_writer_lost_nothing(host, "scenario1", windows, must_succeed=("the killed run", "the rerun"))


def test_each_run_wrote_a_report_with_no_loss_and_a_backup_when_it_had_work(host):
    runs = reports(host, "1")
    assert len(runs) == 2
    first, second = runs
    assert first["backup"].startswith("/home/deploy/backups/") and first["movements_lost"] == 0
    assert first["migrations_after"]["inventory"]["applied"][-1] == "0007_populate_customer_numbers"
    assert second["plan"][-1].strip() == "nothing to do: already there"
    # A run with nothing to do changes nothing, so it takes no backup.
    assert second["backup"] is None and second["movements_lost"] == 0


def test_the_first_run_was_killed_while_it_migrated():
    assert killed_at("scenario1_killed") == "TASK [Migrate the app to the target (a rerun finds it there and changes nothing)] ***"
    assert "PLAY RECAP" not in run_log("scenario1_killed")


def test_the_kill_reached_the_migrate_probe_in_the_api_container_and_the_rerun_finished():
    assert_remote_work_killed("scenario1_killed", "in container api", r'^python3 - \{"action": "migrate"')
    assert "PLAY RECAP" in run_log("scenario1_resumed")


def test_check_mode_and_bad_inputs_changed_nothing(host):
    assert recorded(host, "state_after_check") == recorded(host, "state_before_rollback")
    assert recorded(host, "state_after_check")["inventory"] == "0008_add_idempotency_and_constraints"


def test_check_mode_showed_the_plan():
    log = run_log("check")
    assert "backwards inventory 0008_add_idempotency_and_constraints" in log
    assert "LOSSY" in log and "CHECK MODE" in log


@pytest.mark.parametrize(("name", "message"), [
    ("missing", "No scenario given"),
    ("zero", "Unknown scenario '0'"),
    ("five", "Unknown scenario '5'"),
    ("abc", "Unknown scenario 'abc'"),
    ("injection", "Unknown scenario '1;reboot'"),
    ("migration_target", "0042_does_not_exist"),
    ("target_release", "Unknown target_release '9.9'"),
    ("drop_app", "Ask for it by name with -e allow_drop_app=true"),
])
def test_bad_input_is_refused_with_a_clear_message(name, message):
    log = run_log(f"bad_{name}")
    assert message in log


@pytest.mark.parametrize("name", ["missing", "zero", "five", "abc", "injection", "drop_app"])
def test_a_bad_scenario_is_refused_on_the_controller_before_any_host(name):
    recap = run_log(f"bad_{name}").split("PLAY RECAP")[-1]
    assert "localhost" in recap and "depotix-" not in recap
