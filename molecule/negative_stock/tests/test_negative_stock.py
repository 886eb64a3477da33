"""Runbook scenario 4: no negative stock, the constraint back, every correction on record."""

from depotix_checks import check_constraints, health, killed_at, psql, recorded, run_log, scalar, table_counts


def test_no_item_is_below_zero(host):
    assert scalar(host, "SELECT count(*) FROM inventory_inventoryitem WHERE quantity < 0") == 0


def test_the_quantity_constraint_is_back(host):
    constraints = check_constraints(host, "inventory_inventoryitem")
    assert constraints["inventory_inventoryitem_quantity_non_negative"] == "CHECK ((quantity >= 0))"


def test_each_corrected_item_has_exactly_one_adjust_movement_with_its_old_value(host):
    rows = psql(host, "SELECT qty_base || '|' || note FROM inventory_stockmovement "
                      "WHERE type = 'ADJUST' AND note LIKE 'rollback scenario 4:%' ORDER BY qty_base").splitlines()
    assert [r.split("|")[0] for r in rows] == ["3", "7"]
    assert "quantity -3 corrected to 0" in rows[0] and "quantity -7 corrected to 0" in rows[1]


def test_only_the_adjustments_were_added(host):
    before, after = recorded(host, "counts_before_rollback"), table_counts(host)
    assert after["inventory_stockmovement"] == before["inventory_stockmovement"] + 2
    assert {t: n for t, n in after.items() if t != "inventory_stockmovement"} == \
        {t: n for t, n in before.items() if t != "inventory_stockmovement"}


def test_api_is_healthy(host):
    assert health(host)[0] == 200


def test_the_first_run_was_killed_while_it_reapplied_the_constraint():
    assert killed_at("scenario4_killed").startswith("TASK [Re-apply the migration that adds the constraint]")
    assert "PLAY RECAP" not in run_log("scenario4_killed")
    assert "PLAY RECAP" in run_log("scenario4_resumed")
