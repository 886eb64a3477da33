"""Several apps to their own targets in one plan (``targets``), and apps not named (``targets_unlisted``).

The pure parts (reading targets, ordering, plan segments, conflicts) run
in-process; the rest runs the probe against the fixture project, and the
module through the fake docker CLI, as the other tests do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

import pytest
from ansible.module_utils.django_migration_probe import (
    ProbeError,
    ordered_targets,
    plan_segments,
    refuse_conflicting_targets,
    resolve_named_target,
    resolve_target_map,
    target_conflicts,
)
from ansible.module_utils.django_migration_protocol import normalise_targets
from conftest import BILLING, SHOP, DockerHost, applied_rows, record_ghost, run_module, run_probe

BRANCHED = ["0001_initial", "0002_a", "0002_b"]  # 0002_a and 0002_b both depend on 0001 only


def linear_ancestors(app: str, name: str) -> Set[str]:
    names = SHOP if app == "shop" else BILLING
    return set(names[: names.index(name) + 1])


def linear_descendants(app: str, name: str) -> Set[str]:
    names = SHOP if app == "shop" else BILLING
    return set(names[names.index(name) + 1 :])


def branched_ancestors(app: str, name: str) -> Set[str]:
    return {"0001_initial", name}


def app_state(names: List[str], applied: int = 0) -> Dict[str, List[str]]:
    return {"applied": names[:applied], "unapplied": names[applied:], "leaf": names[-1:], "ghosts": []}


STATE = {"shop": app_state(SHOP, 3), "billing": app_state(BILLING, 2)}
ORDER = {"shop": SHOP, "billing": BILLING}


def steps_of(document: Dict[str, Any]) -> List[tuple]:
    return [(step["app"], step["name"], step["direction"]) for step in document["plan"]]


# --- reading targets ----------------------------------------------------------------------------


def test_targets_keep_names_lists_and_leaf_requests_as_given() -> None:
    targets = {"inventory": ["0007_populate_customer_numbers"], "apitokens": "zero", "shop": None, "billing": []}

    assert normalise_targets(targets) == targets


@pytest.mark.parametrize(
    "targets, message",
    [
        ({}, "targets must map at least one app label"),
        (["shop"], "targets must map at least one app label"),
        ({"shop": 7}, "targets.shop must be a migration name"),
        ({"shop": ["0007", 8]}, "Quote numbers: '0007', not 0007"),
        ({"shop": [None]}, "targets.shop must be"),
        ({"shop": {"name": "0001"}}, "targets.shop must be"),
        ({"shop": ""}, "targets.shop must be"),
    ],
)
def test_targets_that_name_no_migration_are_refused_with_what_to_write(targets: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        normalise_targets(targets)


def test_ledger_leaf_list_resolves_to_its_newest_name_and_accepts_prefixes() -> None:
    target = resolve_named_target(STATE, ORDER, "shop", ["0002_item_sku", "0004"], linear_ancestors)

    assert target == "0004_clamp_negative_quantities"


def test_empty_leaf_list_means_zero() -> None:
    assert resolve_named_target(STATE, ORDER, "billing", [], linear_ancestors) is None


def test_leaves_that_do_not_depend_on_each_other_are_refused() -> None:
    state = {"shop": app_state(BRANCHED)}

    with pytest.raises(ProbeError) as refused:
        resolve_named_target(state, {"shop": BRANCHED}, "shop", ["0002_a", "0002_b"], branched_ancestors)

    assert refused.value.kind == "multiple_leaves"
    assert refused.value.details["leaf"] == ["0002_a", "0002_b"]
    assert "makemigrations --merge" in refused.value.message


def test_every_app_unknown_to_the_code_is_named_at_once() -> None:
    targets = {"shop": "0003", "apitokens": ["0001_initial"], "inventory": "0007"}

    with pytest.raises(ProbeError) as refused:
        resolve_target_map(STATE, ORDER, targets, linear_ancestors)

    assert refused.value.kind == "unknown_app"
    assert refused.value.details["unknown_apps"] == ["apitokens", "inventory"]
    assert refused.value.message.startswith("targets names apitokens, inventory, which this code has no migrations")
    assert "Use the image of the release that contains them" in refused.value.message


# --- planning -----------------------------------------------------------------------------------


def test_targets_that_unapply_are_planned_before_those_that_apply() -> None:
    targets = {"billing": "0002_invoice_note", "shop": "0002_item_sku", "zeta": None}
    state = dict(STATE, billing=app_state(BILLING, 0), zeta=app_state(["0001_initial"], 1))

    assert ordered_targets(state, targets.items()) == [
        ("shop", "0002_item_sku"),
        ("zeta", None),
        ("billing", "0002_invoice_note"),
    ]


def test_each_target_gets_the_part_of_the_combined_plan_it_adds() -> None:
    plans = {
        1: ["shop.0003-"],
        2: ["shop.0003-", "billing.0001+", "billing.0002+"],
        3: ["shop.0003-", "billing.0001+", "billing.0002+"],
    }

    segments = plan_segments(lambda targets: plans[len(targets)], [("shop", "0002"), ("billing", "0002"), ("x", "1")])

    assert segments == [["shop.0003-"], ["billing.0001+", "billing.0002+"], []]


@pytest.mark.parametrize(
    "applied, target, conflict",
    [
        ({"shop": SHOP[:2]}, "0002_item_sku", None),
        ({"shop": SHOP[:3]}, "0002_item_sku", {"missing": [], "extra": ["0003_item_price"]}),
        ({"shop": SHOP[:1]}, "0002_item_sku", {"missing": ["0002_item_sku"], "extra": []}),
        ({"shop": SHOP[:1]}, None, {"missing": [], "extra": ["0001_initial"]}),
    ],
)
def test_app_left_off_its_target_by_the_plan_is_a_conflict(
    applied: Dict[str, List[str]], target: Optional[str], conflict: Optional[Dict]
) -> None:
    after = {app: {"applied": names} for app, names in applied.items()}

    conflicts = target_conflicts(after, {"shop": target}, linear_ancestors, linear_descendants)

    assert conflicts.get("shop") == conflict


def test_conflict_with_an_unlisted_app_says_targets_unlisted_took_it_to_zero() -> None:
    conflicts = {"shop": {"missing": [], "extra": ["0001_initial", "0002_item_sku"]}}

    with pytest.raises(ProbeError) as refused:
        refuse_conflicting_targets(conflicts, {"shop": None, "billing": "0002_invoice_note"}, ["shop"])

    assert refused.value.kind == "conflicting_targets"
    assert refused.value.details["conflicts"] == conflicts
    assert (
        "shop would not be at zero, where targets_unlisted=zero takes it as it is not named in targets "
        "(0001_initial, 0002_item_sku would still be applied)" in refused.value.message
    )


# --- the probe: one Django start, app by app --------------------------------------------------------


@pytest.mark.db_state("shop_0003")
def test_targets_migrate_app_by_app_in_the_plans_order_in_one_run(database: Path) -> None:
    document = run_probe(
        database, {"action": "migrate", "targets": {"shop": "0002_item_sku", "billing": ["0002_invoice_note"]}}
    )

    assert document["ok"], document
    assert steps_of(document) == [
        ("shop", "0003_item_price", "backwards"),
        ("billing", "0001_initial", "forwards"),
        ("billing", "0002_invoice_note", "forwards"),
    ]
    assert document["targets"] == {"billing": "0002_invoice_note", "shop": "0002_item_sku"}
    runs = [line.strip() for line in document["migrate_output"] if line.strip().startswith("Target specific")]
    assert runs == [
        "Target specific migration: 0002_item_sku, from shop",
        "Target specific migration: 0002_invoice_note, from billing",
    ]
    assert document["after"]["shop"]["applied"] == SHOP[:2]
    assert document["after"]["billing"]["applied"] == BILLING
    assert applied_rows(database, "shop") == ["shop.%s" % name for name in SHOP[:2]]


@pytest.mark.db_state("shop_0003")
def test_failure_in_a_later_app_undoes_the_apps_migrated_before_it(database: Path) -> None:
    before = applied_rows(database)

    document = run_probe(
        database,
        {"action": "migrate", "targets": {"shop": "0002_item_sku", "billing": ["0002_invoice_note"]}},
        FIXTURE_FAIL_MIGRATION="billing.0002",
    )

    assert document["kind"] == "migrate_failed"
    assert document["restored"] is True
    assert "Migrating billing to 0002_invoice_note, shop to 0002_item_sku failed" in document["message"]
    # Back both ways: billing.0001 (applied before the failure) unapplied, shop.0003 (unapplied first) applied again.
    assert "restored to what it was before (billing.0001_initial, shop.0003_item_price undone)" in document["message"]
    assert sorted(applied_rows(database)) == sorted(before)


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_unlisted_zero_takes_apps_the_previous_release_did_not_have_to_zero(database: Path) -> None:
    previous_leaves = {"shop": ["0003_item_price"]}  # as the ledger recorded the release before billing existed

    document = run_probe(
        database,
        {"action": "migrate", "targets": previous_leaves, "targets_unlisted": "zero", "allow_drop_app": True},
    )

    assert document["ok"], document
    assert document["unlisted_zeroed"] == ["billing"]
    assert document["targets"] == {"billing": "zero", "shop": "0003_item_price"}
    assert steps_of(document) == [
        ("billing", "0002_invoice_note", "backwards"),
        ("billing", "0001_initial", "backwards"),
    ]
    assert applied_rows(database, "billing") == []
    assert applied_rows(database, "shop") == ["shop.%s" % name for name in SHOP[:3]]


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_unlisted_apps_are_kept_by_default(database: Path) -> None:
    document = run_probe(database, {"action": "plan", "targets": {"shop": ["0003_item_price"]}})

    assert document["ok"], document
    assert document["plan"] == []
    assert document["unlisted_zeroed"] == []
    assert document["targets"] == {"shop": "0003_item_price"}


@pytest.mark.db_state("shop_0003_billing_leaf")
def test_unlisted_app_missing_from_the_image_is_refused_as_ghosts(database: Path) -> None:
    before = applied_rows(database)

    document = run_probe(
        database,
        {
            "action": "migrate",
            "targets": {"shop": ["0003_item_price"]},
            "targets_unlisted": "zero",
            "settings": "fixture_site.settings_alt",  # the older image: shop only
        },
    )

    assert document["kind"] == "ghosts"
    assert document["ghosts"] == {"billing": BILLING}
    assert document["unlisted_zeroed"] == ["billing"]
    assert applied_rows(database) == before


# --- the probe: checks across the combined plan --------------------------------------------------


@pytest.mark.parametrize(
    "request_, kind, detail",
    [
        pytest.param(
            {"targets": {"billing": ["0002_invoice_note"], "shop": "0003"}},
            "lossy",
            {"lossy_steps": ["shop.0004_clamp_negative_quantities"]},
            marks=pytest.mark.db_state("shop_0004_billing_leaf"),
            id="lossy",
        ),
        pytest.param(
            {"targets": {"billing": "0001", "shop": "0004"}, "allow_lossy": True},
            "irreversible",
            {"irreversible_steps": ["shop.0005_item_quantity_index"]},
            marks=pytest.mark.db_state("all_leaf"),
            id="irreversible",
        ),
        pytest.param(
            {"targets": {"shop": "0004", "billing": ["0002_invoice_note"]}},
            "ghosts",
            {"ghosts": {"billing": ["0003_from_a_newer_release"]}},
            marks=pytest.mark.db_state("shop_0004_billing_leaf"),
            id="ghost",
        ),
    ],
)
def test_refusal_of_one_apps_step_stops_the_whole_plan(database: Path, request_: Dict, kind: str, detail: Dict) -> None:
    if kind == "ghosts":
        record_ghost(database, "billing", "0003_from_a_newer_release")
    before = applied_rows(database)

    document = run_probe(database, dict(request_, action="migrate"))

    assert document["kind"] == kind
    assert {key: document[key] for key in detail} == detail
    assert applied_rows(database) == before


@pytest.mark.db_state("shop_0003")
def test_targets_that_contradict_each_other_are_refused_before_anything_runs(database: Path) -> None:
    before = applied_rows(database)

    document = run_probe(database, {"action": "migrate", "targets": {"shop": "0001", "billing": ["0002_invoice_note"]}})

    assert document["kind"] == "conflicting_targets"
    assert document["conflicts"] == {"shop": {"missing": [], "extra": ["0002_item_sku"]}}
    assert "shop would not be at 0001_initial (0002_item_sku would still be applied)" in document["message"]
    assert applied_rows(database) == before


# --- the module --------------------------------------------------------------------------------------


def test_rollback_to_previous_leaves_plans_in_check_mode_migrates_then_changes_nothing(
    host: DockerHost, capsys
) -> None:
    host.start_from("shop_0003_billing_leaf")
    args = dict(
        container="api",
        state="migrated",
        targets={"shop": ["0002_item_sku"]},
        targets_unlisted="zero",
        allow_drop_app=True,
        diff=True,
    )

    planned = run_module(capsys, check_mode=True, **args)
    unchanged = applied_rows(host.db)
    migrated = run_module(capsys, **args)
    again = run_module(capsys, **args)

    assert planned["changed"] is True
    assert planned["unlisted_zeroed"] == ["billing"]
    assert planned["after"] == {"billing": [], "shop": SHOP[:2]}
    assert planned["diff"]["after"] == "shop.0001_initial\nshop.0002_item_sku\n"
    assert len(unchanged) == 5
    assert migrated["changed"] is True
    assert migrated["app"] is None and migrated["target"] is None
    assert migrated["targets"] == {"billing": "zero", "shop": "0002_item_sku"}
    assert migrated["after"] == {"billing": [], "shop": SHOP[:2]}
    assert again["changed"] is False
    assert again["plan"] == [] and again["unlisted_zeroed"] == []
    assert applied_rows(host.db) == ["shop.0001_initial", "shop.0002_item_sku"]
    assert host.commands() == ["exec"] * 3
    request = json.loads(host.calls()[1][-1])
    assert (request["action"], request["targets"], request["targets_unlisted"]) == (
        "migrate",
        {"shop": ["0002_item_sku"]},
        "zero",
    )
    assert "app" not in request and "target" not in request


def test_targets_naming_an_app_the_image_does_not_know_fail_before_anything_runs(host: DockerHost, capsys) -> None:
    result = run_module(
        capsys, container="api", state="migrated", targets={"shop": "0002", "apitokens": ["0001_initial"]}
    )

    assert result["failed"]
    assert result["kind"] == "unknown_app"
    assert result["unknown_apps"] == ["apitokens"]
    assert result["known_apps"] == ["billing", "shop"]
    assert "targets names apitokens, which this code has no migrations for" in result["msg"]
    assert applied_rows(host.db) == []
