"""Runbook scenario 3: keys ignored after the flag is switched off, and it stays off (through scenario 4 too)."""

import json

from depotix_checks import (PROJECT_DIR, assert_no_failed_request, assert_remote_work_killed,
                            assert_writer_lost_nothing, container_image, content_changes, health, killed_at, psql,
                            recorded, report_window, rollback_reports, run_log, writer_figures)


def post_movement(host, token: str, key: str) -> dict:
    out = host.check_output(
        "curl -s -m 5 -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' "
        "-H 'Idempotency-Key: %s' -d '{\"item\": 3, \"type\": \"IN\", \"qty_base\": 1}' "
        "http://127.0.0.1/api/inventory/stock-movements/", token, key)
    return json.loads(out)


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
    (report,) = rollback_reports(host, "3")
    assert report["smoke_test"]["keys_ignored"] is True
    assert report["movements_lost"] == 0


def test_only_the_smoke_test_changed_the_contents(host):
    # The smoke test adds its three movements (the same key twice, then the OUT that takes
    # the two units out again) on one item, whose quantity ends as it was: only its
    # updated_at moves. Every other value of every row of every table is as it was.
    smoke = [line.split("|") for line in psql(
        host, "SELECT id, item_id FROM inventory_stockmovement "
              "WHERE note LIKE 'rollback scenario 3 smoke test%' ORDER BY id").splitlines()]
    assert len(smoke) == 3 and len({item for _, item in smoke}) == 1
    changes = content_changes(recorded(host, "checksums_before_scenario3"), recorded(host, "checksums_after_scenario3"))
    assert changes == {"inventory_inventoryitem": {"cells_changed": {smoke[0][1]: ["updated_at"]}},
                       "inventory_stockmovement": {"rows_added": [movement for movement, _ in smoke]}}


def test_every_movement_acknowledged_during_the_runs_is_in_the_database(host):
    (resumed,) = rollback_reports(host, "3")
    summary, _ = writer_figures(host, "scenario3")
    windows = {"the killed run": (summary["started_at"], report_window(resumed)[0]),
               "the rerun": report_window(resumed)}
    assert_writer_lost_nothing(host, "scenario3", windows, must_succeed=tuple(windows))


def test_the_first_run_was_killed_during_the_recreate_and_the_rerun_finished():
    assert killed_at("scenario3_killed").startswith(
        "TASK [api : Ensure the API container runs the release, never migrating at start, api-previous")
    assert "PLAY RECAP" not in run_log("scenario3_killed")
    assert "PLAY RECAP" in run_log("scenario3_resumed")


def test_the_kill_reached_the_docker_container_module_on_the_server():
    # The module's interpreter, started by the connection's docker exec (pipelined: the module on its stdin).
    assert_remote_work_killed("scenario3_killed", "on the server", r"^/usr/bin/python3(\.[0-9]+)?$")


def test_no_request_failed_through_the_edge_during_the_killed_run_and_the_rerun(host):
    # The container with the flag off started beside the serving one; the poller (10/s) and
    # the writer (20/s) went through the edge on 127.0.0.1:80 throughout.
    assert_no_failed_request(host, "scenario3", 50, 100)
