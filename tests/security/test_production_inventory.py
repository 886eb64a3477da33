"""The production inventory is a working example: one Docker host over SSH as `deploy`,
root only on the Docker hosts, every environment value set, nothing set twice."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import PRODUCTION, PRODUCTION_HOST, ROOT, run

ROOT_VARS = ROOT / "group_vars" / "all" / "main.yml"
PRODUCTION_VARS = PRODUCTION / "group_vars" / "all" / "main.yml"


@pytest.fixture(scope="module")
def inventory() -> dict:
    result = run(["ansible-inventory", "-i", str(PRODUCTION), "--list"])
    assert result.returncode == 0, result.stdout
    return json.loads(result.stdout[result.stdout.index("{"):])


def production_vars() -> dict:
    return yaml.safe_load(PRODUCTION_VARS.read_text())


@pytest.mark.parametrize("group", ["db", "api", "backup"])
def test_the_host_plays_every_group(inventory, group):
    assert inventory[group]["hosts"] == [PRODUCTION_HOST]


@pytest.mark.parametrize(("variable", "value"), [
    ("ansible_user", "deploy"),
    ("ansible_become", True),
    ("ansible_become_method", "ansible.builtin.sudo"),
])
def test_the_host_is_reached_over_ssh_as_deploy_and_becomes_root_there(inventory, variable, value):
    assert inventory["_meta"]["hostvars"][PRODUCTION_HOST][variable] == value


def test_nothing_becomes_root_on_the_controller():
    # group_vars/all would reach the implicit localhost of the controller-side plays too.
    assert not {k for k in production_vars() if k.startswith(("ansible_become", "ansible_user"))}


@pytest.mark.parametrize(("variable", "value"), [
    ("postgres_image", "postgres:16"),
    ("api_image_source", "build"),
    ("api_image_repository", "depotix/api"),
    ("postgres_bind_address", "127.0.0.1"),
    ("api_bind_address", "127.0.0.1"),
    ("api_debug", False),
])
def test_production_sets_what_an_operator_must_decide(variable, value):
    assert production_vars()[variable] == value


def test_the_build_context_is_set():
    assert production_vars()["api_build_context"]


def test_production_sets_nothing_the_root_group_vars_set():
    # The playbook-adjacent group_vars/all outranks the inventory's: a value in both is dead.
    assert set(production_vars()) & set(yaml.safe_load(ROOT_VARS.read_text())) == set()


def test_every_production_variable_is_a_role_variable_or_the_vault_check():
    known = set()
    for defaults in (ROOT / "roles").glob("*/defaults/main.yml"):
        known |= set(yaml.safe_load(defaults.read_text()))
    own = {"depotix_vault_required", "depotix_vault_variables"}
    assert set(production_vars()) - known - own == set()
