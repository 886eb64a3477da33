"""2.0-broken crashes at start: the health gate fails, 0008 is unapplied, 1.0 runs again."""

from depotix_checks import (applied_migrations, assert_api_serves, assert_no_failed_request, assert_remote_work_killed,
                            assert_writer_lost_nothing, check_constraints, columns, content_changes, killed_at, ledger,
                            recorded, run_log, table_checksums, writer_figures)


def test_release_1_0_runs_again_and_is_healthy(host):
    assert_api_serves(host, "1.0")


def test_0008_was_applied_then_unapplied_with_the_broken_image(host):
    assert applied_migrations(host, "inventory")[-1] == "0007_populate_customer_numbers"
    assert "idempotency_key" not in columns(host, "inventory_stockmovement")
    assert "inventory_inventoryitem_quantity_non_negative" not in check_constraints(host, "inventory_inventoryitem")
    assert check_constraints(host, "inventory_stockmovement")["inventory_stockmovement_qty_base_non_negative"] == \
        "CHECK ((qty_base >= 0))"


def test_every_row_kept_its_contents(host):
    # The writer's rows apart (checked on their own below).
    assert content_changes(recorded(host, "checksums_before_deploy"), table_checksums(host)) == {}


def test_ledger_marks_the_broken_deploy_failed_at_the_health_gate(host):
    last = ledger(host)[-1]
    assert (last["release"], last["outcome"]) == ("2.0-broken", "failed")
    assert "health" in last["note"].lower()


def test_the_play_failed_saying_what_failed_and_what_runs_now():
    log = run_log("deploy")
    assert "Deploying 2.0-broken failed at" in log
    assert "1.0 runs again and is healthy" in log


def test_the_first_deploy_was_killed_with_its_one_off_migration_container():
    assert killed_at("deploy_killed").startswith("TASK [api : Migrate every app, in a one-off container from its image")
    assert "PLAY RECAP" not in run_log("deploy_killed")
    facts = assert_remote_work_killed("deploy_killed", "one-off container django-migration-",
                                      r'^python3 - \{"action": "migrate"')
    assert facts["killed"] == [facts["what"].removeprefix("one-off container ")]


def test_the_killed_deploy_left_no_container_behind_and_the_old_release_serving(host):
    left = recorded(host, "after_deploy_kill")
    assert left["one_off_containers"] == 0  # killed, and removed (docker run --rm)
    assert left["api_image"] == "depotix-lab/api:1.0"  # killed before the swap
    # Migrating 0008 is one transaction: killed, it is either rolled back or was committed just before the kill.
    assert left["inventory_leaf"] in ("0007_populate_customer_numbers", "0008_add_idempotency_and_constraints")


def test_the_deploy_run_after_the_kill_finished_its_undo():
    log = run_log("deploy")
    assert "PLAY RECAP" in log and "Deploying 2.0-broken failed at" in log


def test_no_request_failed_through_the_edge_while_the_deploy_failed_and_was_undone(host):
    # The failed release never received traffic: the poller (10/s) and the writer (20/s)
    # went through the edge on 127.0.0.1:80 for the whole run.
    assert_no_failed_request(host, "undo", 50, 100)
    summary, _ = writer_figures(host, "undo")
    assert_writer_lost_nothing(host, "undo", {"the deploy": (summary["started_at"], summary["started_at"] + 5)},
                               must_succeed=("the deploy",))
