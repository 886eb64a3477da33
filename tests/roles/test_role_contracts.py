"""Every role documents itself: commented defaults, an argument spec in step with them, a README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").exists())
PYTHON_TYPES = {"str": str, "bool": bool, "int": int, "list": list, "dict": dict, "path": str}


def defaults_of(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}


def spec_options_of(role: str) -> dict:
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"]["options"]


def uncommented_defaults(role: str) -> list[str]:
    """Return the variables of defaults/main.yml with no comment in the block above them."""
    missing, commented = [], False
    for line in (ROOT / "roles" / role / "defaults" / "main.yml").read_text().splitlines():
        if line.startswith("#"):
            commented = True
        elif not line.strip():
            commented = False
        elif match := re.match(r"^([a-z0-9_]+):", line):
            if not commented:
                missing.append(match.group(1))
    return missing


def test_there_are_roles_to_check():
    assert {"docker_host", "postgres", "api", "backup"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_commented(role):
    assert uncommented_defaults(role) == []


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_names_exactly_the_defaults(role):
    assert set(spec_options_of(role)) == set(defaults_of(role))


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_defaults_and_types_match_defaults(role):
    defaults, options = defaults_of(role), spec_options_of(role)
    for name, option in options.items():
        assert option.get("description"), f"{role}: {name} has no description"
        value = defaults[name]
        assert isinstance(value, PYTHON_TYPES[option["type"]]), f"{role}: {name} is not a {option['type']}"
        if "default" in option:
            assert option["default"] == value, f"{role}: {name} default differs from defaults/main.yml"


@pytest.mark.parametrize("role", ROLES)
def test_role_has_a_readme_and_galaxy_meta(role):
    assert (ROOT / "roles" / role / "README.md").is_file()
    meta = yaml.safe_load((ROOT / "roles" / role / "meta" / "main.yml").read_text())
    assert meta["galaxy_info"]["role_name"] == role
