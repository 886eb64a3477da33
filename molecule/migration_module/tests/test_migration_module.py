"""django_migration against the lab's API and PostgreSQL: query, check mode, migrate, rerun, refusals.

The converge saved every registered result, and the rows of django_migrations read
between the steps, in /root/migration_module_results.json; these tests hold the
module's answers against the database.
"""

from __future__ import annotations

import pytest
from depotix_checks import (CHECKS_0008, applied_migrations, check_constraints, columns, container_image, ledger, psql,
                            recorded)

M0007 = "0007_populate_customer_numbers"
M0008 = "0008_add_idempotency_and_constraints"
IMAGE_1_0 = "depotix-lab/api:1.0"
IMAGE_2_0 = "depotix-lab/api:2.0"


@pytest.fixture(scope="module")
def results(host) -> dict:
    return recorded(host, "migration_module_results")


def rows(results: dict, step: str) -> list[dict]:
    """Return the rows of django_migrations the converge read after ``step``."""
    return results["rows"][step]


def applied_by_app(table: list[dict]) -> dict[str, list[str]]:
    """Return {app: migration names in id order} from saved django_migrations rows."""
    applied: dict[str, list[str]] = {}
    for row in sorted(table, key=lambda r: r["id"]):
        applied.setdefault(row["app"], []).append(row["name"])
    return applied


def diff_lines(text: str) -> set[str]:
    return set(text.splitlines())


# The database after the converge


def test_0008_is_the_last_inventory_migration_and_recorded_once(host):
    assert applied_migrations(host, "inventory")[-2:] == [M0007, M0008]
    assert psql(host, f"SELECT count(*) FROM django_migrations WHERE name = '{M0008}'") == "1"


def test_stock_movements_have_the_idempotency_key(host):
    assert "idempotency_key" in columns(host, "inventory_stockmovement")


@pytest.mark.parametrize(("table", "name", "definition"), CHECKS_0008)
def test_0008_constraints_are_in_place(host, table, name, definition):
    assert check_constraints(host, table).get(name) == definition


def test_no_one_off_migration_container_is_left(host):
    assert host.check_output("docker ps -a --filter name=django-migration- --format '{{.Names}}'") == ""


def test_the_serving_api_container_still_runs_1_0(host):
    # The module ran in one-off containers or exec'ed into api; it never replaces the serving container.
    assert container_image(host, "api") == IMAGE_1_0


def test_the_servers_ledger_still_knows_only_1_0(host):
    # 2.0 was recorded in a copy (/root/releases_with_2.0.json): release 1.0 still runs.
    assert [entry["release"] for entry in ledger(host)] == ["1.0"]


# state: query through the serving container


def test_query_execs_into_the_api_container(results):
    assert results["query"]["runner"] == {"kind": "exec", "container": "api"}
    assert results["query"]["changed"] is False


def test_query_reads_release_1_0_state(results):
    inventory = results["query"]["apps"]["inventory"]
    assert (inventory["applied"][-1], inventory["unapplied"], inventory["leaf"], inventory["ghosts"]) == (
        M0007, [], [M0007], [])


def test_query_agrees_with_the_django_migrations_table(results):
    answered = {app: info["applied"] for app, info in results["query"]["apps"].items()}
    assert answered == applied_by_app(rows(results, "before"))


def test_query_from_the_1_0_container_names_0008_as_a_ghost(results):
    inventory = results["query_ghost"]["apps"]["inventory"]
    assert (inventory["ghosts"], inventory["leaf"], inventory["applied"][-1]) == ([M0008], [M0007], M0007)


# state: migrated inventory 0008 with the 2.0 image: check mode, for real, again


def test_check_mode_changed_no_row_of_django_migrations(results):
    before = rows(results, "before")
    assert M0008 not in applied_by_app(before)["inventory"]
    assert rows(results, "after_check") == before


def test_check_mode_reports_the_change_and_plans_0008_forwards(results):
    check = results["check"]
    assert check["changed"] is True
    assert [(s["app"], s["name"], s["direction"]) for s in check["plan"]] == [("inventory", M0008, "forwards")]
    assert check["migrate_output"] == []
    assert check["after"]["inventory"][-1] == M0008 and check["before"]["inventory"][-1] == M0007


def test_check_mode_warns_that_0008_cannot_be_undone_without_loss(results):
    assert results["check"]["rollback_safe"] is False
    assert results["check"]["lossy_steps"] == [f"inventory.{M0008}"]


@pytest.mark.parametrize("step", ["check", "migrate", "again"])
def test_one_off_container_from_the_2_0_image_on_the_app_network(results, step):
    runner = results[step]["runner"]
    assert (runner["kind"], runner["image"], runner["network"]) == ("run", IMAGE_2_0, "server_appnet")


def test_the_real_run_applied_0008_and_nothing_else(results):
    migrate = results["migrate"]
    assert migrate["changed"] is True
    assert f"  Applying inventory.{M0008}... OK" in migrate["migrate_output"]
    before, after = rows(results, "before"), rows(results, "after_migrate")
    added = [(r["app"], r["name"]) for r in after if r not in before]
    assert added == [("inventory", M0008)] and after[:len(before)] == before


def test_the_module_reports_what_the_table_holds_after_the_run(results):
    assert results["migrate"]["after"] == applied_by_app(rows(results, "after_migrate"))


def test_a_second_run_changes_nothing(results):
    again = results["again"]
    assert (again["changed"], again["plan"], again["migrate_output"]) == (False, [], [])
    assert again["before"] == again["after"] == results["migrate"]["after"]


@pytest.mark.parametrize(("step", "header", "added"), [
    ("check", "applied migrations of inventory (planned)", {f"inventory.{M0008}"}),
    ("migrate", "applied migrations of inventory", {f"inventory.{M0008}"}),
    ("again", "applied migrations of inventory", set()),
])
def test_diff_shows_the_applied_inventory_migrations(results, step, header, added):
    diff = results[step]["diff"]
    assert diff["after_header"] == header
    assert diff_lines(diff["after"]) - diff_lines(diff["before"]) == added
    assert diff_lines(diff["before"]) <= diff_lines(diff["after"])
    assert f"inventory.{M0007}" in diff_lines(diff["before"])


# Refusals with 0008 applied: nothing runs


def test_refusals_changed_no_row_of_django_migrations(results):
    assert rows(results, "after_refusals") == rows(results, "after_migrate")


def test_backwards_plan_with_a_lossy_step_is_refused_naming_it(results):
    lossy = results["lossy"]
    assert (lossy["kind"], lossy["changed"], lossy["lossy_steps"]) == ("lossy", False, [f"inventory.{M0008}"])
    assert f"unapplies inventory.{M0008}" in lossy["msg"] and "allow_lossy: true" in lossy["msg"]
    assert [(s["name"], s["direction"], s["lossy"]) for s in lossy["plan"]] == [(M0008, "backwards", True)]


@pytest.mark.parametrize(("step", "advice"), [
    ("ghost_ledger_1_0", f"the ledger /home/deploy/Depotix/releases.json names no release that contains "
                         f"inventory.{M0008}"),
    ("ghost_ledger_2_0", f"image {IMAGE_2_0} (release 2.0 in the ledger has them as its migration leaves), "
                         f"e.g. image={IMAGE_2_0} state=migrated app=inventory target={M0007}"),
])
def test_the_1_0_image_refuses_the_ghost_0008_and_says_which_image_can_unapply_it(results, step, advice):
    ghost = results[step]
    assert (ghost["kind"], ghost["changed"], ghost["ghosts"]) == ("ghosts", False, {"inventory": [M0008]})
    assert (ghost["runner"]["kind"], ghost["runner"]["image"]) == ("run", IMAGE_1_0)
    assert f"The database has inventory.{M0008} applied, which this code does not contain." in ghost["msg"]
    assert advice in ghost["msg"] and ghost["msg"].endswith("Nothing was run.")
