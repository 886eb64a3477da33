"""Roles are entered through declared entry points only.

Every `include_role`/`import_role ... tasks_from: X` names an entry point of that role's
`meta/argument_specs.yml`, passes its required options with `vars:`, and no play prepares
a role's input with `set_fact`. Each entry point runs the role's checks first, and no
option's description is copied from another one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").exists())
ROLE_PREFIXES = tuple(f"{role}_" for role in ROLES)
INCLUDE_ROLE = {"include_role", "import_role", "ansible.builtin.include_role", "ansible.builtin.import_role"}
SET_FACT = {"set_fact", "ansible.builtin.set_fact"}
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers", "block", "rescue", "always")


class Loader(yaml.SafeLoader):
    """SafeLoader that accepts Ansible's tags (their text is never needed here)."""


Loader.add_constructor("!unsafe", lambda loader, node: "")
Loader.add_constructor("!vault", lambda loader, node: "")


def specs_of(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def defaults_of(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}


def play_files() -> list[Path]:
    """Every YAML file that holds plays or tasks: entry playbooks, phases, roles, lab, Molecule."""
    files = sorted(ROOT.glob("*.yml"))
    for folder in ("playbooks", "roles", "lab/playbooks", "molecule", "bench"):
        files += sorted((ROOT / folder).rglob("*.yml"))
    return [f for f in files if not {"group_vars", "meta", "defaults", "vars"} & set(f.parts)
            and f.name not in {"molecule.yml", "requirements.yml"}]


def tasks_in(items) -> Iterator[dict]:
    """Yield every task (blocks opened) of a playbook or a task file."""
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        yield item
        for key in TASK_LISTS:
            yield from tasks_in(item.get(key))


def tasks_of_project() -> Iterator[tuple[Path, dict]]:
    for path in play_files():
        for task in tasks_in(yaml.load(path.read_text(), Loader=Loader)):  # noqa: S506 - SafeLoader subclass
            yield path, task


def role_calls() -> list[tuple[str, str, str, dict]]:
    """Return (file, role, entry point, vars) of every include_role/import_role with tasks_from."""
    calls = []
    for path, task in tasks_of_project():
        module = next((key for key in task if key in INCLUDE_ROLE), None)
        if module and isinstance(task[module], dict) and "tasks_from" in task[module]:
            calls.append((str(path.relative_to(ROOT)), task[module]["name"], task[module]["tasks_from"],
                          task.get("vars") or {}))
    return calls


def required_options(role: str, entry_point: str) -> set[str]:
    options = specs_of(role)[entry_point].get("options") or {}
    return {name for name, option in options.items() if option.get("required")}


def test_there_are_role_calls_to_check():
    assert {(role, entry) for _, role, entry, _ in role_calls()} >= {
        ("api", "switch"), ("api", "go_back"), ("backup", "dump"), ("postgres", "query")}


@pytest.mark.parametrize(("path", "role", "entry_point", "variables"), role_calls(),
                         ids=lambda value: value if isinstance(value, str) else "")
def test_every_tasks_from_is_a_declared_entry_point_called_with_its_required_options(path, role, entry_point,
                                                                                     variables):
    specs = specs_of(role)
    assert entry_point in specs, f"{path}: {role} has no entry point '{entry_point}' in its argument spec"
    assert (ROOT / "roles" / role / "tasks" / f"{entry_point}.yml").is_file()
    missing = required_options(role, entry_point) - set(variables)
    assert not missing, f"{path}: {role}/{entry_point} is called without {sorted(missing)} in vars"


def test_no_play_prepares_a_role_input_with_set_fact():
    offenders = []
    for path, task in tasks_of_project():
        module = next((key for key in task if key in SET_FACT), None)
        if module is None or "roles" in path.parts:
            continue
        names = [name for name in (task[module] or {}) if name != "cacheable"]
        offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.startswith(ROLE_PREFIXES)]
    assert offenders == []


def test_no_role_sets_another_roles_variables():
    offenders = []
    for role in ROLES:
        for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
            for task in tasks_in(yaml.load(path.read_text(), Loader=Loader)):  # noqa: S506
                module = next((key for key in task if key in SET_FACT), None)
                if module:
                    offenders += [f"{role}/{path.name}: {name}" for name in task[module]
                                  if name.startswith(ROLE_PREFIXES) and not name.startswith(f"{role}_")]
    assert offenders == []


def entry_points() -> list[tuple[str, str]]:
    return [(role, entry) for role in ROLES for entry in specs_of(role) if entry != "main"]


@pytest.mark.parametrize(("role", "entry_point"), entry_points())
def test_every_entry_point_has_a_task_file_and_a_short_description(role, entry_point):
    assert (ROOT / "roles" / role / "tasks" / f"{entry_point}.yml").is_file()
    assert specs_of(role)[entry_point].get("short_description")


@pytest.mark.parametrize(("role", "entry_point"),
                         [(r, e) for r, e in entry_points() if (ROOT / "roles" / r / "tasks" / "validate.yml").exists()])
def test_every_entry_point_runs_the_roles_checks_first(role, entry_point):
    tasks = yaml.load((ROOT / "roles" / role / "tasks" / f"{entry_point}.yml").read_text(), Loader=Loader)  # noqa: S506
    first = tasks[0]
    checks = first.get("ansible.builtin.include_tasks") or first.get("ansible.builtin.import_tasks")
    assert checks == "validate.yml", f"{role}/{entry_point} does not check first"


@pytest.mark.parametrize("role", ROLES)
def test_main_runs_the_checks_first(role):
    if not (ROOT / "roles" / role / "tasks" / "validate.yml").exists():
        pytest.skip(f"{role} has no checks")
    tasks = yaml.load((ROOT / "roles" / role / "tasks" / "main.yml").read_text(), Loader=Loader)  # noqa: S506
    first = tasks[0].get("ansible.builtin.include_tasks") or tasks[0].get("ansible.builtin.import_tasks")
    entry_files = {f"{entry}.yml" for entry in specs_of(role)}
    assert first == "validate.yml" or first in entry_files


@pytest.mark.parametrize(("role", "entry_point"), [(r, e) for r in ROLES for e in specs_of(r)])
def test_no_description_is_copied_from_another_option(role, entry_point):
    options = specs_of(role)[entry_point].get("options") or {}
    seen: dict[str, str] = {}
    for name, option in options.items():
        text = " ".join(option["description"]) if isinstance(option["description"], list) else option["description"]
        assert text not in seen, f"{role}/{entry_point}: {name} repeats the description of {seen.get(text)}"
        seen[text] = name


@pytest.mark.parametrize(("role", "entry_point"), [(r, e) for r, e in entry_points()])
def test_entry_point_options_are_typed_and_enumerations_have_choices(role, entry_point):
    options = specs_of(role)[entry_point].get("options") or {}
    defaults = defaults_of(role)
    for name, option in options.items():
        assert option.get("type"), f"{role}/{entry_point}: {name} has no type"
        if name in defaults and "default" in option:
            assert option["default"] == defaults[name], f"{role}/{entry_point}: {name} default differs"


# -- the rollback table ------------------------------------------------------------------

ROLLBACK_DEFAULTS = yaml.safe_load((ROOT / "playbooks" / "rollback" / "defaults.yml").read_text())
MOLECULE_SCENARIOS = {p.name for p in (ROOT / "molecule").iterdir() if (p / "molecule.yml").exists()}


def molecule_scenarios_running(rollback_number: int) -> set[str]:
    """The Molecule scenarios whose playbooks run rollback.yml -e scenario=<number>."""
    running = set()
    for name in MOLECULE_SCENARIOS:
        for path in (ROOT / "molecule" / name).rglob("*.yml"):
            if re.search(rf"\bscenario={rollback_number}\b", path.read_text()):
                running.add(name)
    return running


@pytest.mark.parametrize("number", sorted(ROLLBACK_DEFAULTS["rollback_scenarios"]))
def test_every_rollback_scenario_names_its_files_and_is_run_by_a_molecule_scenario(number):
    scenario = ROLLBACK_DEFAULTS["rollback_scenarios"][number]
    assert molecule_scenarios_running(number), f"no Molecule scenario runs rollback.yml -e scenario={number}"
    assert scenario["plan"] == f"{scenario['name']}_plan.yml"
    assert scenario["run"] == f"{scenario['name']}.yml"
    for key in ("plan", "run"):
        assert (ROOT / "playbooks" / "rollback" / scenario[key]).is_file()


def test_no_file_is_named_or_included_by_number():
    numbered = [p.name for p in (ROOT / "playbooks").rglob("*.yml") if re.search(r"\d\.yml$", p.name)]
    assert numbered == []
    built = []
    for path, task in tasks_of_project():
        for key in ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks"):
            target = task.get(key)
            if isinstance(target, str) and "{{" in target and "rollback_scenarios[" not in target:
                built.append(f"{path.relative_to(ROOT)}: {target}")
    assert built == []


# -- the checks run on entry points, not only on main ------------------------------------

def run_entry_point(tmp_path: Path, role: str, entry_point: str, variables: dict) -> subprocess.CompletedProcess:
    """Run one entry point on the controller in check mode (nothing reaches a host)."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": f"Call {role}/{entry_point}", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": f"Enter {role} through {entry_point}",
                   "ansible.builtin.include_role": {"name": role, "tasks_from": entry_point},
                   "vars": variables}],
    }]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return subprocess.run(["ansible-playbook", "-i", "localhost,", "--check", str(playbook)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


# Stand-in values for the two secrets the checks require (nothing reaches a host).
SECRETS = dict.fromkeys(("api_secret_key", "api_db_password"), "lab-test-value")


def test_switch_refuses_a_public_bind_address_before_any_task(tmp_path):
    result = run_entry_point(tmp_path, "api", "switch",
                             {**SECRETS, "api_switch_release": "2.0", "api_bind_address": "0.0.0.0"})  # noqa: S104
    assert result.returncode != 0
    assert "Validation of arguments failed" in result.stdout
    assert "api_bind_address" in result.stdout
    assert "Run the API container" not in result.stdout


def test_switch_requires_the_release(tmp_path):
    result = run_entry_point(tmp_path, "api", "switch", dict(SECRETS))
    assert result.returncode != 0
    assert "missing required arguments: api_switch_release" in result.stdout


def test_an_entry_point_refuses_missing_secrets_before_touching_anything(tmp_path):
    result = run_entry_point(tmp_path, "api", "prune", {"api_prune_keep_release": "2.0"})
    assert result.returncode != 0
    assert "TASK [api : Require the API's secrets]" in result.stdout
    assert "List the release images" not in result.stdout


def test_query_refuses_an_unknown_change_mode(tmp_path):
    result = run_entry_point(tmp_path, "postgres", "query", {
        "postgres_query_sql": "SELECT 1", "postgres_query_purpose": "test", "postgres_query_changes": "sometimes"})
    assert result.returncode != 0
    assert "postgres_query_changes must be one of: never, rows, always" in result.stdout
