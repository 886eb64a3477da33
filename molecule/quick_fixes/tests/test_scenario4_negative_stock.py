"""Runbook scenario 4: no negative stock, the constraint back, every correction on record."""

import hashlib

from depotix_checks import (assert_remote_work_killed, assert_writer_lost_nothing, check_constraints, content_changes,
                            health, killed_at, psql,
                            recorded, report_window, rollback_reports, run_log, scalar, writer_figures)


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


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the checksums' own function, not for security


def test_only_the_corrections_changed_the_contents(host):
    # The fix adds one ADJUST per item it corrects and sets those items' quantities from
    # -7 and -3 to 0. Every other value of every row of every table is as it was.
    before = recorded(host, "checksums_before_scenario4")
    adjusts = [line.split("|") for line in psql(
        host, "SELECT id, item_id FROM inventory_stockmovement "
              "WHERE type = 'ADJUST' AND note LIKE 'rollback scenario 4:%' ORDER BY id").splitlines()]
    items = sorted({item for _, item in adjusts}, key=int)
    changes = content_changes(before, recorded(host, "checksums_after_scenario4"))
    assert changes == {"inventory_inventoryitem": {"cells_changed": {item: ["quantity"] for item in items}},
                       "inventory_stockmovement": {"rows_added": [movement for movement, _ in adjusts]}}
    cells = before["inventory_inventoryitem"]["cells"]
    assert [cells[item]["quantity"] for item in items] == [md5("-7"), md5("-3")]
    now = psql(host, f"SELECT quantity FROM inventory_inventoryitem WHERE id IN ({', '.join(items)}) ORDER BY id")
    assert now.splitlines() == ["0", "0"]


def test_every_movement_acknowledged_during_the_runs_is_in_the_database(host):
    resumed, again = rollback_reports(host, "4")
    summary, _ = writer_figures(host, "scenario4")
    windows = {"the killed run": (summary["started_at"], report_window(resumed)[0]),
               "the rerun": report_window(resumed), "the run with nothing to fix": report_window(again)}
    assert_writer_lost_nothing(host, "scenario4", windows, must_succeed=tuple(windows))


def test_api_is_healthy(host):
    assert health(host)[0] == 200


def test_the_first_run_was_killed_while_it_took_its_backup():
    banner = "TASK [backup : Take a verified dump of the database (with the installed script"
    assert killed_at("scenario4_killed").startswith(banner)
    assert "PLAY RECAP" not in run_log("scenario4_killed")


def test_the_kill_reached_the_backup_script_on_the_server_and_the_rerun_finished():
    assert_remote_work_killed("scenario4_killed", "on the server", r"/depotix-backup dump --label 2\.0_")
    assert "PLAY RECAP" in run_log("scenario4_resumed")
    assert "PLAY RECAP" in run_log("scenario4_resumed")
