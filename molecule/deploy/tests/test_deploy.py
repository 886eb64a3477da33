"""deploy.yml -e api_release=2.0 on a 1.0 stack: schema, health, ledger, backup, no row lost."""

import pytest
from depotix_checks import (BACKUP_DIR, CHECKS_0008, assert_api_serves, check_constraints, columns, indexes, ledger,
                            recorded, run_log, table_counts)


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


def test_ledger_has_1_0_then_2_0_both_good(host):
    entries = [(e["release"], e["outcome"]) for e in ledger(host)]
    assert entries == [("1.0", "ok"), ("2.0", "ok")]
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
