"""Every role checks its inputs first: a value of the wrong type stops the role with the
argument spec's message before any of its own tasks runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run

ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())

# (role, variable, wrong value, type the spec wants)
WRONG_VALUES = [
    ("docker_host", "docker_host_engine_wait", "soon", "int"),
    ("postgres", "postgres_port", "five", "int"),
    ("api", "api_health_successes", "many", "int"),
    ("api", "api_read_only", "perhaps", "bool"),
    ("backup", "backup_compress", "high", "int"),
]


def spec_type(role: str, variable: str) -> str:
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"]["options"][variable]["type"]


def play_with(role: str, variable: str, value: str) -> str:
    return yaml.safe_dump([{
        "name": f"Run {role} with {variable}={value}",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "roles": [{"role": role, "vars": {variable: value}}],
    }])


@pytest.mark.parametrize("role", ROLES)
def test_role_has_an_argument_spec_for_main(role):
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    assert spec["argument_specs"]["main"]["options"]


@pytest.mark.parametrize(("role", "variable", "value", "wanted"), WRONG_VALUES)
def test_wrong_type_stops_the_role_with_the_argument_spec_message(tmp_path: Path, role, variable, value, wanted):
    assert spec_type(role, variable) == wanted
    playbook = tmp_path / "play.yml"
    playbook.write_text(play_with(role, variable, value))
    # Check mode, on the controller, with no inventory: nothing is changed even if the
    # spec let the value through.
    result = run(["ansible-playbook", "-i", "localhost,", "--check", str(playbook)])
    assert result.returncode != 0, result.stdout
    assert "Validation of arguments failed" in result.stdout
    assert f"argument '{variable}' is of type str and we were unable to convert to {wanted}" in result.stdout
    assert f"TASK [{role} : " not in result.stdout.replace(f"TASK [{role} : Validating arguments", "")
