"""deploy.yml -e api_release=2.0 on a 1.0 stack: schema, health, ledger, backup, no row lost."""

import re

import pytest
from depotix_checks import (BACKUP_DIR, CHECKS_0008, assert_api_serves, check_constraints, columns, indexes, ledger,
                            recorded, rollback_reports, run_log, table_counts)


def test_api_runs_release_2_0_and_is_healthy(host):
    assert_api_serves(host, "2.0")


def test_stock_movements_have_the_idempotency_key(host):
    assert "idempotency_key" in columns(host, "inventory_stockmovement")


@pytest.mark.parametrize(("table", "name", "definition"), CHECKS_0008)
def test_release_2_0_constraints_are_in_place(host, table, name, definition):
    assert check_constraints(host, table).get(name) == definition


@pytest.mark.parametrize(("name", "columns_in_order"), [
    ("inv_move_item_type_created_idx", "(item_id, type, created_at)"),
    ("inv_move_creator_created_idx", "(created_by_id, created_at)"),
])
def test_release_2_0_indexes_are_in_place(host, name, columns_in_order):
    assert indexes(host, "inventory_stockmovement")[name].endswith(columns_in_order)


def test_ledger_has_1_0_then_2_0_then_the_rollback_and_the_deploy_again_all_good(host):
    entries = [(e["release"], e["action"], e["outcome"]) for e in ledger(host)]
    # site, deploy; (the runs with the edge down and the failed drain recorded nothing);
    # the rollback migrations first, the deploy after it.
    assert entries == [("1.0", "site", "ok"), ("2.0", "deploy", "ok"), ("1.0", "rollback", "ok"),
                       ("2.0", "deploy", "ok")]
    assert ledger(host)[-1]["leaves"]["inventory"] == ["0008_add_idempotency_and_constraints"]


def test_a_verified_backup_of_1_0_was_taken_before_the_deploy(host):
    dumps = host.check_output(f"ls {BACKUP_DIR}").split()
    assert any(d.endswith("_1.0.dump") for d in dumps)
    name = next(d for d in dumps if d.endswith("_1.0.dump"))
    assert host.run(f"cd {BACKUP_DIR} && sha256sum -c {name}.sha256").rc == 0


def test_no_row_was_lost(host):
    assert table_counts(host) == recorded(host, "counts_before_deploy")


def test_scenario_1_left_the_database_behind_the_running_release():
    log = run_log("scenario1")
    assert "backwards inventory 0008_add_idempotency_and_constraints" in log


def test_deploying_the_running_release_again_migrated_the_database_forward():
    # The schema tests above see 0008 in place at the end; here, that the redeploy put it back.
    log = run_log("redeploy")
    assert "1 migration(s) to apply: the database is behind 2.0" in log
    assert "the database is at its leaves: nothing to do" not in log


def test_a_third_deploy_found_nothing_to_do():
    log = run_log("redeploy_again")
    assert "its container runs it and the database is at its leaves: nothing to do" in log


# --- the edge in every switch (side_effect.yml)

@pytest.mark.parametrize("run", ["deploy_edge_down", "rollback_edge_down"])
def test_a_deploy_or_rollback_with_the_edge_down_stops_before_any_change(run):
    log = run_log(run)
    assert re.search(r"The edge on \S+ cannot take a switch: .*does not answer.*\(run site.yml to start the edge\)"
                     r"\. Nothing was changed\.", log)
    assert "Take a verified backup before the first change" not in log


def test_the_runs_with_the_edge_down_left_the_serving_container_and_the_ledger_as_they_were(host):
    assert recorded(host, "before_edge_down") == recorded(host, "after_edge_down")


def test_a_drain_that_timed_out_left_the_old_release_serving_and_said_so(host):
    # The fault happened: the edge counted the held session on the serving slot before the run.
    during = recorded(host, "edge_during_hold")["servers"]
    serving = next(name for name, server in during.items() if server["sessions"] > 0)
    assert during[serving]["status"] == "UP"
    log = run_log("site_drain_timeout")
    assert re.search(r"drain_run: the switch exited [1-9]", log)
    assert re.search(rf"Slot {serving} \(api\) still had sessions after api_drain_timeout \(3 s\): it stays enabled",
                     log)
    after = recorded(host, "edge_after_drain")
    other = next(name for name in after["edge"]["servers"] if name != serving)
    assert after["edge"]["servers"][serving]["status"] == "UP"
    assert after["edge"]["servers"][other]["status"] == "MAINT"
    assert (after["api_id"], after["api_image"]) == (recorded(host, "after_edge_down")["api_id"],
                                                     "depotix-lab/api:2.0")


def test_the_held_request_was_answered_and_no_request_failed_during_the_drain(host):
    held = recorded(host, "held_request")
    # Answered (400: the body names no item), not cut: it finished after the drain gave up.
    assert (held["status"], held.get("error")) == (400, None)
    assert held["ended_at"] - held["started_at"] >= 15
    poll = recorded(host, "poller_drain")
    print(f"drain: {poll}")
    assert poll["samples"] > 50 and poll["non_200_samples"] == 0


def test_a_rollback_whose_earlier_release_fails_its_smoke_request_goes_migrations_first_and_says_how_long(host):
    (report,) = [r for r in rollback_reports(host, "2")]
    order = report["order"]
    assert order["order"] == "migrations first"
    assert "smoke request /no-such-path answered 404" in order["why"]
    refused = float(order["writes_refused_seconds"])
    log = run_log("rollback_migrations_first")
    assert f"writes refused: {order['writes_refused_seconds']} s" in log
    # Clients got the edge's 503 (with Retry-After), never a failed connection, for about that long.
    poll = recorded(host, "poller_migrations_first")
    print(f"migrations first: reported {refused} s refused; poller {poll}")
    assert set(poll["statuses"]) == {"200", "503"}
    assert refused > 0 and abs(poll["non_200_seconds"] - refused) <= 2.5
