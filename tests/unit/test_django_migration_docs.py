"""The module's documentation renders with ansible-doc and matches its argument spec."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import django_migration
import pytest
import yaml
from conftest import LIBRARY, REPO

ANSIBLE_DOC = Path(sys.executable).with_name("ansible-doc")


def ansible_doc(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0")
    return subprocess.run(
        [str(ANSIBLE_DOC), "-M", str(LIBRARY), *args, "django_migration"],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def rendered_json(module_docs: Dict[str, Any]) -> Dict[str, Any]:
    return module_docs["django_migration"]


def test_ansible_doc_renders_the_manual_page() -> None:
    completed = ansible_doc()

    assert completed.returncode == 0, completed.stderr
    assert "[WARNING]" not in completed.stderr
    for heading in (
        "OPTIONS",
        "ATTRIBUTES",
        "EXAMPLES:",
        "RETURN VALUES:",
        "allow_lossy",
        "targets_unlisted",
        "rollback_safe",
    ):
        assert heading in completed.stdout


def test_documented_options_match_the_argument_spec(rendered_json: Dict[str, Any]) -> None:
    documented = rendered_json["doc"]["options"]

    assert set(documented) == set(django_migration.ARGUMENT_SPEC)
    for name, spec in django_migration.ARGUMENT_SPEC.items():
        doc = documented[name]
        assert doc["type"] == spec["type"], name
        assert doc.get("default") == spec.get("default"), name
        assert doc.get("choices") == spec.get("choices"), name
        assert doc.get("elements") == spec.get("elements"), name
        assert bool(doc.get("required")) == bool(spec.get("required")), name
        assert doc["description"], name


def test_examples_are_yaml_tasks_using_only_documented_options(rendered_json: Dict[str, Any]) -> None:
    tasks = yaml.safe_load(rendered_json["examples"])

    assert len(tasks) >= 3
    for task in tasks:
        assert task["name"]
        assert set(task["django_migration"]) <= set(django_migration.ARGUMENT_SPEC)


def test_return_values_document_every_key_the_module_returns(rendered_json: Dict[str, Any]) -> None:
    documented = set(rendered_json["return"])

    assert {
        "apps",
        "plan",
        "before",
        "after",
        "target",
        "lossy_steps",
        "irreversible_steps",
        "rollback_safe",
        "runner",
        "kind",
        "output",
        "restored",
        "migrate_output",
        "targets",
        "unlisted_zeroed",
        "unknown_apps",
        "conflicts",
        "drops",
        "dropped_apps",
    } <= documented
