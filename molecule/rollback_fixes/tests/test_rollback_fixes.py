"""Runbook scenarios 4 then 3 on a 2.0 deploy, each killed halfway and finished by a rerun.

Scenario 4: no negative stock, the constraint back, every correction on record.
Scenario 3: keys ignored after the flag is switched off, and it stays off.
"""

import json

from depotix_checks import (PROJECT_DIR, check_constraints, container_image, health, killed_at, psql, recorded,
                            run_log, scalar, table_counts)


def reports(host, scenario: str) -> list[dict]:
    names = sorted(host.check_output(f"ls {PROJECT_DIR}/reports").split())
    return [json.loads(host.file(f"{PROJECT_DIR}/reports/{n}").content_string)
            for n in names if n.startswith(f"rollback_scenario{scenario}_")]


def post_movement(host, token: str, key: str) -> dict:
    out = host.check_output(
        "curl -s -m 5 -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' "
        "-H 'Idempotency-Key: %s' -d '{\"item\": 3, \"type\": \"IN\", \"qty_base\": 1}' "
        "http://127.0.0.1:8000/api/inventory/stock-movements/", token, key)
    return json.loads(out)


# ------------------------------------------------------------------ scenario 4


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


def test_scenario_4_added_only_the_adjustments(host):
    before, after = recorded(host, "counts_before_scenario4"), recorded(host, "counts_before_scenario3")
    assert after["inventory_stockmovement"] == before["inventory_stockmovement"] + 2
    assert {t: n for t, n in after.items() if t != "inventory_stockmovement"} == \
        {t: n for t, n in before.items() if t != "inventory_stockmovement"}


def test_scenario_4_was_killed_while_it_reapplied_the_constraint_and_finished_by_the_rerun(host):
    assert killed_at("scenario4_killed").startswith("TASK [Re-apply the migration that adds the constraint]")
    assert "PLAY RECAP" not in run_log("scenario4_killed")
    assert "PLAY RECAP" in run_log("scenario4_resumed")
    runs = reports(host, "4")
    assert len(runs) == 2 and all(run["movements_lost"] == 0 for run in runs)


# ------------------------------------------------------------------ scenario 3


def test_the_container_runs_2_0_with_the_flag_off(host):
    assert container_image(host, "api") == "depotix-lab/api:2.0"
    env = json.loads(host.check_output("docker inspect --format '{{json .Config.Env}}' api"))
    assert "IDEMPOTENCY_ENABLED=false" in env
    assert health(host)[0] == 200


def test_the_override_survives_a_site_run_and_says_why(host):
    overrides = json.loads(host.file(f"{PROJECT_DIR}/api-overrides.json").content_string)
    assert overrides["env"] == {"IDEMPOTENCY_ENABLED": "false"}
    assert "scenario 3" in overrides["reason"]


def test_a_repeated_key_creates_a_second_movement(host):
    token = host.file(f"{PROJECT_DIR}/lab/api_token").content_string.strip()
    first = post_movement(host, token, "verify-repeat")
    second = post_movement(host, token, "verify-repeat")
    assert first["id"] != second["id"]


def test_the_smoke_test_proved_it_and_nothing_was_lost(host):
    report = reports(host, "3")[-1]
    assert report["smoke_test"]["keys_ignored"] is True
    assert report["movements_lost"] == 0
    before = recorded(host, "counts_before_scenario3")
    after = table_counts(host)
    assert after["inventory_stockmovement"] >= before["inventory_stockmovement"] + 3
    assert all(after[t] >= n for t, n in before.items())


def test_scenario_3_was_killed_during_the_recreate_and_finished_by_the_rerun():
    assert killed_at("scenario3_killed").startswith("TASK [Recreate the API container with the new settings]")
    assert "PLAY RECAP" not in run_log("scenario3_killed")
    assert "PLAY RECAP" in run_log("scenario3_resumed")


def test_downtime_was_measured_and_bounded(host):
    poll = recorded(host, "poller_scenario3")
    print(f"scenario 3: {poll}")
    assert poll["samples"] > 50
    assert poll["non_200_seconds"] < 30
