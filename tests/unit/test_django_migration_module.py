"""The django_migration module: argument handling, runner choice and error paths.

The module runs in-process (conftest.run_module); the docker CLI is
tests/unit/support/fake_docker.py, which runs the probe with this interpreter
in the fixture project (conftest.DockerHost).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict

import django_migration
import pytest
from conftest import BILLING, ENV_FILE_ONLY_VALUE, SHOP, DockerHost, applied_rows, record_ghost, run_module


def migrate(host: DockerHost, capsys: pytest.CaptureFixture, **args: Any) -> Dict:
    return run_module(capsys, container="api", state="migrated", **args)


# --- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        ({}, "one of the following is required: container, image"),
        ({"container": "api", "target": "0001"}, "missing parameter(s) required by 'target': app"),
        ({"container": "api", "volumes": ["/s:/run/secrets:ro"]}, "missing parameter(s) required by 'volumes': image"),
        ({"container": "api", "network": "appnet"}, "missing parameter(s) required by 'network': image"),
        ({"container": "api", "env_file": "/x.env"}, "missing parameter(s) required by 'env_file': image"),
        ({"container": "api", "state": "present"}, "value of state must be one of: query, migrated"),
        ({"container": "api", "timeout": "soon"}, "timeout"),
        ({"container": "api", "timeout": 0}, "timeout must be a positive number of seconds"),
        (
            {"image": "fixture/api:2.0", "env_file": "/nonexistent/api.env"},
            "env_file /nonexistent/api.env does not exist",
        ),
        ({"container": "api", "docker_cli": "no-such-docker-cli"}, "docker CLI 'no-such-docker-cli' not found"),
        ({"container": "api", "targets": {"shop": "0001"}, "app": "shop"}, "mutually exclusive: targets|app"),
        ({"container": "api", "state": "migrated", "targets": {}}, "targets must map at least one app label"),
        ({"container": "api", "state": "migrated", "targets": {"shop": 1}}, "Quote numbers: '0007', not 0007"),
        ({"container": "api", "targets": {"shop": "0001"}}, "targets needs state=migrated"),
        ({"container": "api", "state": "migrated", "targets_unlisted": "zero"}, "targets_unlisted=zero needs targets"),
        ({"container": "api", "targets_unlisted": "all"}, "value of targets_unlisted must be one of: keep, zero"),
    ],
)
def test_invalid_arguments_fail_before_docker_runs(host: DockerHost, capsys, args: Dict, message: str) -> None:
    result = run_module(capsys, **args)

    assert result["failed"]
    assert message in result["msg"]
    assert host.calls() == []


def test_argument_spec_rules_match_the_documented_requirements() -> None:
    rules = django_migration.MODULE_RULES

    assert rules["supports_check_mode"] is True
    assert ("container", "image") in rules["required_one_of"]
    assert rules["required_by"] == {
        "network": "image",
        "env_file": "image",
        "volumes": "image",
        "target": "app",
        "graph_cache": ("database_container", "database_name"),
    }
    assert rules["mutually_exclusive"] == [("targets", "app"), ("targets", "target")]


# --- runners --------------------------------------------------------------------------------


def test_query_costs_exactly_one_docker_exec(host: DockerHost, capsys) -> None:
    result = run_module(capsys, container="api")

    assert result["changed"] is False
    assert result["apps"]["shop"]["unapplied"] == SHOP
    assert result["runner"] == {"kind": "exec", "container": "api"}
    calls = host.calls()
    assert [call[:6] for call in calls] == [["exec", "-i", "-w", "/app", "api", "python3"]]


def test_running_container_is_preferred_over_image(host: DockerHost, capsys) -> None:
    result = run_module(capsys, container="api", image="fixture/api:2.0", network="appnet", env_file=str(host.env_file))

    assert result["runner"]["kind"] == "exec"
    assert host.commands() == ["inspect", "exec"]


def test_stopped_container_falls_back_to_one_off_container_from_image(host: DockerHost, capsys) -> None:
    result = run_module(
        capsys,
        container="old",
        image="fixture/api:2.0",
        network="appnet",
        env_file=str(host.env_file),
        volumes=["/srv/secrets:/run/secrets:ro", "/srv/extra:/extra:ro"],
        user="app",
    )

    assert result["runner"]["kind"] == "run"
    assert result["runner"]["reason"] == "container old is exited"
    assert host.commands() == ["inspect", "run"]
    run = host.calls()[1]
    assert run[:4] == ["run", "--rm", "-i", "--pull"]
    name = run[run.index("--name") + 1]
    assert name == result["runner"]["name"] and name.startswith("django-migration-")
    for option, value in [
        ("--entrypoint", "python3"),
        ("--network", "appnet"),
        ("--env-file", str(host.env_file)),
        ("--user", "app"),
        ("-w", "/app"),
    ]:
        assert run[run.index(option) + 1] == value
    volumes = [run[index + 1] for index, arg in enumerate(run) if arg == "--volume"]
    assert volumes == ["/srv/secrets:/run/secrets:ro", "/srv/extra:/extra:ro"]
    assert run.index("--volume") < run.index("fixture/api:2.0")


def test_image_alone_runs_a_one_off_container_with_env_file(host: DockerHost, capsys) -> None:
    host.monkeypatch.delenv("FIXTURE_DB_PATH")  # the one-off container gets it from the env file only

    result = run_module(
        capsys, image="fixture/api:2.0", env_file=str(host.env_file), state="migrated", app="shop", target="0002"
    )

    assert result["changed"] is True
    assert host.commands() == ["run"]
    assert applied_rows(host.db, "shop") == ["shop.0001_initial", "shop.0002_item_sku"]
    # The state before and after, as a query would read them: no query needed around a migrate.
    assert result["apps_before"]["shop"]["applied"] == []
    assert result["apps_before"]["shop"]["unapplied"] == SHOP
    assert result["apps"]["shop"]["applied"] == ["0001_initial", "0002_item_sku"]
    assert result["apps"]["shop"]["unapplied"] == SHOP[2:]


def test_env_file_secret_never_reaches_output_or_command_line(host: DockerHost, capsys) -> None:
    result = run_module(capsys, image="fixture/api:2.0", env_file=str(host.env_file), app="nope", state="migrated")

    assert result["failed"]
    assert ENV_FILE_ONLY_VALUE not in json.dumps(result)
    assert ENV_FILE_ONLY_VALUE not in host.log.read_text()


@pytest.mark.parametrize("container, status", [("old", "not running (status: exited)"), ("gone", "missing")])
def test_unavailable_container_without_image_fails_saying_to_set_image(
    host: DockerHost, capsys, container, status
) -> None:
    result = run_module(capsys, container=container)

    assert result["failed"]
    assert result["kind"] == "container_unavailable"
    assert "Container %s is %s" % (container, status) in result["msg"]
    assert "Set image" in result["msg"]


@pytest.mark.parametrize("args", [{"container": "api"}, {"container": "api", "image": "fixture/api:2.0"}])
def test_unreachable_docker_engine_is_not_mistaken_for_a_missing_container(host: DockerHost, capsys, args) -> None:
    host.monkeypatch.setenv("FAKE_DOCKER_DAEMON_DOWN", "1")

    result = run_module(capsys, **args)

    assert result["failed"]
    assert result["msg"].startswith("docker inspect api failed: Cannot connect to the Docker daemon")
    assert "Docker engine runs" in result["msg"]


def test_image_missing_on_host_is_explained(host: DockerHost, capsys) -> None:
    result = run_module(capsys, image="fixture/api:9.9")

    assert result["failed"]
    assert "docker run could not start a container from image fixture/api:9.9" in result["msg"]
    assert "never pulled" in result["msg"]


def test_python_missing_in_container_is_explained(host: DockerHost, capsys) -> None:
    result = run_module(capsys, container="api", python="python2")

    assert result["failed"]
    assert "python2 could not be started in container api" in result["msg"]
    assert "python option" in result["msg"]


# --- state=migrated -------------------------------------------------------------------------


def test_check_mode_returns_the_plan_and_changes_nothing(host: DockerHost, capsys) -> None:
    result = migrate(host, capsys, app="billing", check_mode=True)

    assert result["changed"] is True
    assert [(step["app"], step["name"]) for step in result["plan"]] == [
        ("shop", "0001_initial"),
        ("shop", "0002_item_sku"),
        ("billing", "0001_initial"),
        ("billing", "0002_invoice_note"),
    ]
    assert result["after"]["billing"] == BILLING
    assert result["migrate_output"] == []
    assert applied_rows(host.db) == []
    assert json.loads(host.calls()[0][-1])["action"] == "plan"


def test_migrated_changes_once_then_reports_no_change(host: DockerHost, capsys) -> None:
    first = migrate(host, capsys, app="shop", target="0003")
    second = migrate(host, capsys, app="shop", target="0003_item_price")

    assert first["changed"] is True
    assert first["target"] == "0003_item_price"
    assert first["before"]["shop"] == [] and first["after"]["shop"] == SHOP[:3]
    assert first["rollback_safe"] is True
    assert "diff" not in first  # diff mode is off
    assert second["changed"] is False
    assert second["plan"] == []
    assert host.commands() == ["exec", "exec"]


def test_migrated_without_app_brings_every_app_to_its_leaf(host: DockerHost, capsys) -> None:
    host.start_from("shop_0003")

    result = run_module(capsys, image="fixture/api:2.0", env_file=str(host.env_file), state="migrated", diff=True)

    assert result["changed"] is True
    assert result["app"] is None and result["target"] is None
    assert result["targets"] == {"billing": "0002_invoice_note", "shop": "0005_item_quantity_index"}
    assert result["after"] == {"billing": BILLING, "shop": SHOP}
    assert result["rollback_safe"] is False
    assert result["diff"]["after_header"] == "applied migrations of billing, shop"
    assert json.loads(host.calls()[0][-1]) == {
        "action": "migrate",
        "allow_drop_app": False,
        "allow_lossy": False,
        "app": None,
        "grace": 30,
        "manage_py": "manage.py",
        "settings": None,
        "target": None,
        "timeout": 300,
    }


def test_diff_shows_applied_migrations_before_and_after(host: DockerHost, capsys) -> None:
    host.start_from("shop_0003_billing_leaf")

    result = migrate(host, capsys, app="billing", target="0001", diff=True)

    assert result["diff"]["before"] == "billing.0001_initial\nbilling.0002_invoice_note\n"
    assert result["diff"]["after"] == "billing.0001_initial\n"
    assert result["diff"]["before_header"] == "applied migrations of billing"


def test_forwards_plan_reports_it_could_not_be_rolled_back(host: DockerHost, capsys) -> None:
    result = migrate(host, capsys, app="shop", check_mode=True)

    assert result["rollback_safe"] is False
    assert result["lossy_steps"] == ["shop.0004_clamp_negative_quantities"]
    assert result["irreversible_steps"] == ["shop.0005_item_quantity_index"]


def test_irreversible_plan_fails_with_the_plan_and_runs_nothing(host: DockerHost, capsys) -> None:
    host.start_from("all_leaf")

    result = migrate(host, capsys, app="shop", target="0004", allow_lossy=True)

    assert result["failed"]
    assert result["kind"] == "irreversible"
    assert "shop.0005_item_quantity_index cannot be unapplied" in result["msg"]
    assert result["plan"][0]["irreversible"] is True
    assert len(applied_rows(host.db, "shop")) == 5


def test_lossy_plan_fails_in_check_mode_too(host: DockerHost, capsys) -> None:
    host.start_from("shop_0004_billing_leaf")

    result = migrate(host, capsys, app="shop", target="0003", check_mode=True)

    assert result["failed"]
    assert result["kind"] == "lossy"
    assert result["lossy_steps"] == ["shop.0004_clamp_negative_quantities"]


def test_unknown_target_lists_known_migrations(host: DockerHost, capsys) -> None:
    result = migrate(host, capsys, app="shop", target="0042")

    assert result["failed"]
    assert "Known migrations: %s" % ", ".join(SHOP) in result["msg"]


def test_ghost_refusal_names_the_image_from_the_ledger(host: DockerHost, capsys, tmp_path: Path) -> None:
    host.start_from("shop_0004_billing_leaf")
    record_ghost(host.db, "shop", "0006_from_release_3")
    ledger = tmp_path / "releases.json"
    ledger.write_text(
        json.dumps(
            {
                "entries": [
                    {
                        "release": "2.0",
                        "image": "fixture/api:2.0",
                        "leaves": {"shop": ["0005_item_quantity_index"]},
                        "outcome": "ok",
                    },
                    {
                        "release": "3.0",
                        "image": "fixture/api:3.0",
                        "leaves": {"shop": ["0006_from_release_3"]},
                        "outcome": "ok",
                    },
                ]
            }
        )
    )

    result = migrate(host, capsys, app="shop", target="0004", allow_lossy=True, ledger=str(ledger))

    assert result["failed"]
    assert result["kind"] == "ghosts"
    assert result["ghosts"] == {"shop": ["0006_from_release_3"]}
    assert "shop.0006_from_release_3" in result["msg"]
    assert "image=fixture/api:3.0 state=migrated app=shop target=0004_clamp_negative_quantities" in result["msg"]


def test_ghost_refusal_without_ledger_says_how_to_get_the_image_named(host: DockerHost, capsys) -> None:
    host.start_from("shop_0004_billing_leaf")
    record_ghost(host.db, "shop", "0006_from_release_3")

    result = migrate(host, capsys, app="shop", target="0004")

    assert result["kind"] == "ghosts"
    assert "give ledger" in result["msg"]


def test_failing_migration_puts_django_last_lines_in_msg_and_restores(host: DockerHost, capsys) -> None:
    host.monkeypatch.setenv("FIXTURE_FAIL_MIGRATION", "billing.0002")

    result = migrate(host, capsys, app="billing")

    assert result["failed"]
    assert result["kind"] == "migrate_failed"
    assert result["restored"] is True
    assert result["changed"] is False
    assert "Last lines of Django output:" in result["msg"]
    assert result["msg"].rstrip().endswith("RuntimeError: fixture failure requested in billing.0002")
    assert applied_rows(host.db) == []


def test_timeout_of_a_stuck_docker_client_removes_the_one_off_container(host: DockerHost, capsys) -> None:
    host.monkeypatch.setenv("FAKE_DOCKER_HANG", "1")
    started = time.monotonic()

    result = run_module(capsys, image="fixture/api:2.0", timeout=1)

    assert time.monotonic() - started < 15
    assert result["failed"]
    assert result["kind"] == "timeout"
    assert "did not answer within 3 s (timeout 1 s)" in result["msg"]
    name = result["runner"]["name"]
    assert ["rm", "--force", name] in host.calls()
