"""The in-container probe, run against the real fixture Django project on SQLite."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from conftest import BILLING, FIXTURE_PROJECT, SHOP, applied_rows, record_ghost, run_probe


def steps_of(document):
    return [(step["app"], step["name"], step["direction"]) for step in document["plan"]]


# --- query -------------------------------------------------------------------------------


def test_query_on_empty_database_lists_every_migration_as_unapplied_with_leaves(database: Path) -> None:
    document = run_probe(database, {"action": "query"})

    assert document["ok"]
    assert document["before"] == {
        "billing": {"applied": [], "unapplied": BILLING, "leaf": ["0002_invoice_note"], "ghosts": []},
        "shop": {"applied": [], "unapplied": SHOP, "leaf": ["0005_item_quantity_index"], "ghosts": []},
    }
    assert applied_rows(database) == []


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_query_splits_applied_and_unapplied_in_dependency_order(database: Path) -> None:
    state = run_probe(database, {"action": "query"})["before"]

    assert state["shop"]["applied"] == SHOP[:3]
    assert state["shop"]["unapplied"] == SHOP[3:]
    assert state["billing"]["applied"] == BILLING


@pytest.mark.db_state("all_leaf")
def test_query_reports_ghost_migration_applied_but_missing_from_code(database: Path) -> None:
    record_ghost(database, "shop", "0006_from_a_newer_release")

    state = run_probe(database, {"action": "query"})["before"]

    assert state["shop"]["ghosts"] == ["0006_from_a_newer_release"]
    assert "0006_from_a_newer_release" not in state["shop"]["applied"]


def test_query_result_survives_output_printed_by_settings(database: Path) -> None:
    document = run_probe(database, {"action": "query"}, FIXTURE_NOISY="1")

    assert document["ok"]
    assert set(document["before"]) == {"billing", "shop"}


def test_settings_option_overrides_the_manage_py_default(database: Path) -> None:
    document = run_probe(database, {"action": "query", "settings": "fixture_site.settings_alt"})

    assert set(document["before"]) == {"shop"}


def test_project_without_manage_py_starts_from_settings_option(database: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(FIXTURE_PROJECT, project, ignore=shutil.ignore_patterns("manage.py", "__pycache__"))

    document = run_probe(database, {"action": "query", "settings": "fixture_site.settings"}, cwd=project)

    assert document["ok"], document
    assert set(document["before"]) == {"billing", "shop"}


def test_missing_manage_py_without_settings_says_what_to_set(database: Path, tmp_path: Path) -> None:
    document = run_probe(database, {"action": "query"}, cwd=tmp_path)

    assert document["kind"] == "manage_py_missing"
    assert "manage_py" in document["message"] and "settings" in document["message"]


def test_django_failing_to_start_reports_its_last_output_lines(database: Path) -> None:
    document = run_probe(database, {"action": "query", "settings": "no_such_settings_module"})

    assert document["ok"] is False
    assert document["kind"] == "django_failed"
    assert "no_such_settings_module" in document["message"]
    assert document["output"][-1] == "ModuleNotFoundError: No module named 'no_such_settings_module'"


# --- plans -------------------------------------------------------------------------------


def test_plan_forwards_applies_dependencies_of_other_apps_first(database: Path) -> None:
    document = run_probe(database, {"action": "plan", "app": "billing"})

    assert document["target"] == "0002_invoice_note"
    assert steps_of(document) == [
        ("shop", "0001_initial", "forwards"),
        ("shop", "0002_item_sku", "forwards"),
        ("billing", "0001_initial", "forwards"),
        ("billing", "0002_invoice_note", "forwards"),
    ]
    assert document["after"]["billing"]["applied"] == BILLING
    assert applied_rows(database) == []


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_plan_backwards_unapplies_dependent_apps_first_in_order(database: Path) -> None:
    # billing goes back before its initial migration: allow_drop_app (test_django_migration_drops.py).
    document = run_probe(database, {"action": "plan", "app": "shop", "target": "0001_initial", "allow_drop_app": True})

    steps = steps_of(document)
    # Django's own order: billing depends on shop.0002, so both billing steps precede it.
    assert steps == [
        ("shop", "0003_item_price", "backwards"),
        ("billing", "0002_invoice_note", "backwards"),
        ("billing", "0001_initial", "backwards"),
        ("shop", "0002_item_sku", "backwards"),
    ]
    assert steps.index(("billing", "0001_initial", "backwards")) < steps.index(("shop", "0002_item_sku", "backwards"))
    assert document["after"]["shop"]["applied"] == SHOP[:1]
    assert document["after"]["billing"]["applied"] == []


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_migrate_backwards_across_several_migrations_changes_applied_rows(database: Path) -> None:
    document = run_probe(
        database, {"action": "migrate", "app": "shop", "target": "0001_initial", "allow_drop_app": True}
    )

    assert document["ok"], document
    assert applied_rows(database) == ["shop.0001_initial"]
    assert document["after"]["shop"]["applied"] == ["0001_initial"]
    assert any("Unapplying shop.0002_item_sku" in line for line in document["migrate_output"])


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_prefix_target_resolves_to_the_unique_migration_it_starts(database: Path) -> None:
    document = run_probe(database, {"action": "plan", "app": "shop", "target": "0004"})

    assert document["target"] == "0004_clamp_negative_quantities"
    assert steps_of(document) == [("shop", "0004_clamp_negative_quantities", "forwards")]


def test_ambiguous_prefix_is_refused_listing_the_candidates(database: Path) -> None:
    document = run_probe(database, {"action": "plan", "app": "shop", "target": "000"})

    assert document["kind"] == "ambiguous_target"
    assert document["candidates"] == SHOP


def test_unknown_target_is_refused_listing_known_migrations(database: Path) -> None:
    document = run_probe(database, {"action": "migrate", "app": "shop", "target": "0009_nope"})

    assert document["kind"] == "unknown_target"
    assert document["known_migrations"] == SHOP
    assert "0005_item_quantity_index" in document["message"]
    assert applied_rows(database) == []


def test_unknown_app_is_refused_listing_apps_with_migrations(database: Path) -> None:
    document = run_probe(database, {"action": "plan", "app": "inventory"})

    assert document["kind"] == "unknown_app"
    assert document["known_apps"] == ["billing", "shop"]


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_zero_target_unapplies_every_migration_of_the_app(database: Path) -> None:
    document = run_probe(database, {"action": "migrate", "app": "billing", "target": "zero", "allow_drop_app": True})

    assert document["target"] == "zero"
    assert steps_of(document) == [
        ("billing", "0002_invoice_note", "backwards"),
        ("billing", "0001_initial", "backwards"),
    ]
    assert applied_rows(database, "billing") == []
    assert applied_rows(database, "shop") == ["shop.%s" % name for name in SHOP[:3]]


# --- irreversible, lossy, rollback safety ----------------------------------------------------


@pytest.mark.db_state("all_leaf")
def test_irreversible_step_fails_the_plan_before_anything_runs(database: Path) -> None:
    before = applied_rows(database)

    document = run_probe(database, {"action": "migrate", "app": "shop", "target": "0003", "allow_lossy": True})

    assert document["kind"] == "irreversible"
    assert document["irreversible_steps"] == ["shop.0005_item_quantity_index"]
    assert steps_of(document)[0] == ("shop", "0005_item_quantity_index", "backwards")
    assert applied_rows(database) == before


@pytest.mark.db_state("shop_0004_billing_leaf")
def test_lossy_step_is_refused_without_allow_lossy(database: Path) -> None:
    before = applied_rows(database)

    document = run_probe(database, {"action": "migrate", "app": "shop", "target": "0003"})

    assert document["kind"] == "lossy"
    assert document["lossy_steps"] == ["shop.0004_clamp_negative_quantities"]
    assert "allow_lossy" in document["message"]
    assert applied_rows(database) == before


@pytest.mark.db_state("shop_0004_billing_leaf")
def test_lossy_step_runs_with_allow_lossy(database: Path) -> None:
    document = run_probe(database, {"action": "migrate", "app": "shop", "target": "0003", "allow_lossy": True})

    assert document["ok"], document
    assert [step["lossy"] for step in document["plan"]] == [True]
    assert "shop.0004_clamp_negative_quantities" not in applied_rows(database)


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_forwards_plan_flags_steps_that_could_not_be_rolled_back(database: Path) -> None:
    plan = run_probe(database, {"action": "plan", "app": "shop"})["plan"]

    flags = {step["name"]: (step["irreversible"], step["lossy"]) for step in plan}
    assert flags == {
        "0004_clamp_negative_quantities": (False, True),
        "0005_item_quantity_index": (True, False),
    }
    run_python = plan[0]["operations"][0]
    assert run_python == {"type": "RunPython", "description": "Raw Python operation", "reversible": True, "lossy": True}


# --- ghosts --------------------------------------------------------------------------------


@pytest.mark.db_state("shop_0004_billing_leaf")
def test_plan_refuses_migration_missing_from_image(database: Path) -> None:
    record_ghost(database, "shop", "0006_from_a_newer_release")
    before = applied_rows(database)

    document = run_probe(database, {"action": "migrate", "app": "shop", "target": "0004", "allow_lossy": True})

    assert document["kind"] == "ghosts"
    assert document["ghosts"] == {"shop": ["0006_from_a_newer_release"]}
    assert "shop.0006_from_a_newer_release" in document["message"]
    assert applied_rows(database) == before


@pytest.mark.db_state("shop_0004_billing_leaf")
def test_ghost_above_target_is_refused_even_when_the_plan_is_empty(database: Path) -> None:
    record_ghost(database, "shop", "0006_from_a_newer_release")

    document = run_probe(database, {"action": "plan", "app": "shop", "target": "0004_clamp_negative_quantities"})

    assert document["kind"] == "ghosts"


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_ghost_below_target_left_by_old_history_does_not_block(database: Path) -> None:
    record_ghost(database, "shop", "0001_squashed_away")

    document = run_probe(database, {"action": "plan", "app": "shop", "target": "0004"})

    assert document["ok"], document
    assert document["before"]["shop"]["ghosts"] == ["0001_squashed_away"]


# --- failures leave the state as it was ---------------------------------------------------------


@pytest.mark.db_state("shop_0003")
def test_failed_migrate_restores_the_previous_state_and_shows_django_output(database: Path) -> None:
    before = applied_rows(database)

    document = run_probe(database, {"action": "migrate", "app": "billing"}, FIXTURE_FAIL_MIGRATION="billing.0002")

    assert document["kind"] == "migrate_failed"
    assert document["restored"] is True
    assert "fixture failure requested in billing.0002" in document["message"]
    assert any("RuntimeError: fixture failure" in line for line in document["output"])
    assert applied_rows(database) == before


def run_until_migrating(database: Path, request: dict, **env: str) -> tuple:
    """Migrate billing with a timeout that strikes while its slow migration runs.

    On a loaded machine Django may not even have started within a short timeout; then
    nothing was migrated and the run says so. The timeout grows until it strikes while
    migrating, so the fault under test really happened. Returns (document, timeout, seconds).
    """
    for timeout in (1, 3, 9, 27):
        started = time.monotonic()
        document = run_probe(database, dict(request, action="migrate", app="billing", timeout=timeout), **env)
        took = time.monotonic() - started
        if not document["message"].endswith("nothing was migrated."):
            return document, timeout, took
    raise AssertionError("Django never reached the migration within 27 s: %s" % document["message"])


@pytest.mark.db_state("shop_0003")
def test_timeout_interrupts_migrate_and_restores_the_previous_state(database: Path) -> None:
    before = applied_rows(database)

    document, timeout, took = run_until_migrating(database, {"grace": 5}, FIXTURE_SLOW_MIGRATION="120")

    assert took < timeout + 5 + 5
    assert document["kind"] == "timeout"
    assert document["restored"] is True
    assert "timed out after %d" % timeout in document["message"]
    assert applied_rows(database) == before


@pytest.mark.db_state("shop_0003")
def test_probe_kills_itself_when_django_does_not_stop_at_the_timeout(database: Path) -> None:
    document, timeout, took = run_until_migrating(
        database, {"grace": 1}, FIXTURE_SLOW_MIGRATION="120", FIXTURE_STUCK="1"
    )

    assert took < timeout + 1 + 8
    assert document["kind"] == "timeout"
    assert "was killed" in document["message"]
    assert "billing.0002_invoice_note" not in applied_rows(database)


# --- every app to its leaf (a release's deploy) ----------------------------------------------


@pytest.mark.db_state("shop_0003")
def test_without_app_every_app_is_migrated_to_its_leaf(database: Path) -> None:
    document = run_probe(database, {"action": "migrate"})

    assert document["ok"], document
    assert document["targets"] == {"billing": "0002_invoice_note", "shop": "0005_item_quantity_index"}
    assert "target" not in document
    assert {step["app"] for step in document["plan"]} == {"billing", "shop"}
    assert len(applied_rows(database)) == len(SHOP) + len(BILLING)


@pytest.mark.db_state("all_leaf")
def test_without_app_a_ghost_in_any_app_is_refused(database: Path) -> None:
    record_ghost(database, "billing", "0003_from_a_newer_release")

    document = run_probe(database, {"action": "plan"})

    assert document["kind"] == "ghosts"
    assert document["ghosts"] == {"billing": ["0003_from_a_newer_release"]}
    assert document["targets"]["billing"] == "0002_invoice_note"
