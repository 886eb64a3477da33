"""Audit of every task the project runs on a host: a task a secret passes through has
`no_log`, and no secret reaches a command line (visible in `ps`) or a container's
environment (visible in `docker inspect`).

Secrets are the variables whose names say so (passwords, secret keys, tokens, vault_*);
a variable derived from one under another name is beyond this audit: the Molecule
scenarios `default` and the rollback ones search real -vvv output for the values themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, AnsibleLoader

SECRET_NAME = re.compile(r"^(vault_\w+|\w*(password|passwd|secret_key|_token|_tokens))$")
# Names of paths, mounts and formats that merely mention a secret.
NOT_A_SECRET = re.compile(r"_(file|files|dir|dirs|path|mount|volumes|format)$")
EXPRESSION_KEYS = {"when", "that", "failed_when", "changed_when", "until"}
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")
BLOCK_LISTS = ("block", "rescue", "always")
COMMAND_MODULES = {"command", "shell", "raw", "script", "expect"}
# Options of those modules that never reach a command line.
COMMAND_SAFE_OPTIONS = {"stdin", "chdir", "creates", "removes", "name"}
# Options of docker_container that `ps` or `docker inspect` show.
CONTAINER_VISIBLE_OPTIONS = {"command", "entrypoint", "env", "labels", "healthcheck"}


def yaml_files() -> list[Path]:
    """Return every YAML file of the plays, task files and roles the project runs on hosts."""
    files = sorted(ROOT.glob("*.yml")) + sorted((ROOT / "playbooks").rglob("*.yml"))
    files += sorted((ROOT / "lab" / "playbooks").rglob("*.yml"))
    files += sorted(p for p in (ROOT / "roles").rglob("*.yml") if p.parent.name in {"tasks", "handlers"})
    return [p for p in files if "group_vars" not in p.parts]


def is_task(item) -> bool:
    return isinstance(item, dict) and "hosts" not in item and "import_playbook" not in item


def tasks_of(document) -> Iterator[tuple[dict, bool]]:
    """Yield (task, no_log inherited from its play or blocks) of a playbook or task file."""
    if not isinstance(document, list):
        return
    for item in document:
        if not isinstance(item, dict):
            continue
        if "hosts" in item:
            for key in TASK_LISTS:
                yield from flatten(item.get(key) or [], bool(item.get("no_log")))
        elif is_task(item):
            yield from flatten([item], False)


def flatten(tasks: list, no_log: bool) -> Iterator[tuple[dict, bool]]:
    for task in tasks:
        if not isinstance(task, dict):
            continue
        hidden = no_log or task.get("no_log") is True
        if any(key in task for key in BLOCK_LISTS):
            for key in BLOCK_LISTS:
                yield from flatten(task.get(key) or [], hidden)
        else:
            yield task, hidden


def expressions(value, key: str = "") -> Iterator[str]:
    """Yield the Jinja expressions of a task's values (templates, and bare conditionals)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from expressions(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from expressions(v, key)
    elif isinstance(value, str):
        for template, statement in re.findall(r"{{(.*?)}}|{%(.*?)%}", value, flags=re.S):
            yield template or statement
        if key in EXPRESSION_KEYS and "{{" not in value:
            yield value


def secrets_in(value) -> set[str]:
    """Return the secret variables the expressions of a task (or of some of its values) use.

    A task's own result, named by its `register`, is what it produced, not a secret
    passing through it: it is left out.
    """
    own_result = value.get("register") if isinstance(value, dict) else None
    if own_result:
        value = {k: v for k, v in value.items() if k != "register"}
    names = set()
    for expression in expressions(value):
        if own_result:
            expression = re.sub(rf"\b{re.escape(own_result)}\b", "", expression)
        without_literals = re.sub(r"'[^']*'|\"[^\"]*\"", "", expression)
        names |= {name for name in re.findall(r"\b[a-z_][a-z0-9_]*\b", without_literals)
                  if SECRET_NAME.match(name) and not NOT_A_SECRET.search(name)}
    return names


def module_of(task: dict) -> tuple[str, object]:
    """Return (short module name, its arguments) of a task."""
    keywords = {"name", "when", "register", "loop", "loop_control", "vars", "args", "become", "become_user",
                "delegate_to", "run_once", "no_log", "tags", "changed_when", "failed_when", "check_mode",
                "environment", "until", "retries", "delay", "ignore_errors", "notify", "listen", "diff",
                "any_errors_fatal", "throttle", "timeout", "module_defaults", "with_items", "connection"}
    for key, value in task.items():
        if key not in keywords:
            return key.rsplit(".", 1)[-1], value
    return "", None


def visible_options(args) -> object:
    """Return what of a command module's arguments ends up on its command line."""
    if isinstance(args, dict):
        return {k: v for k, v in args.items() if k not in COMMAND_SAFE_OPTIONS}
    return args


def audited_tasks() -> list[tuple[str, dict, bool]]:
    found = []
    for path in yaml_files():
        for task, hidden in tasks_of(yaml.load(path.read_text(), Loader=AnsibleLoader)):
            found.append((f"{path.relative_to(ROOT)}: {task.get('name', '(unnamed)')}", task, hidden))
    return found


TASKS = audited_tasks()


def test_the_audit_sees_the_tasks_that_handle_secrets():
    seen = {where for where, task, _ in TASKS if secrets_in(task)}
    assert any("roles/postgres/tasks/secrets.yml" in w for w in seen)
    assert any("roles/api/tasks/config.yml" in w for w in seen)
    assert any("roles/postgres/tasks/database.yml" in w for w in seen)


def test_every_task_a_secret_passes_through_has_no_log():
    unprotected = [f"{where} uses {sorted(secrets_in(task))}" for where, task, hidden in TASKS
                   if secrets_in(task) and not hidden]
    assert unprotected == []


def test_no_secret_is_put_on_a_command_line():
    exposed = []
    for where, task, _ in TASKS:
        module, args = module_of(task)
        if module in COMMAND_MODULES:
            shown = [visible_options(args), visible_options(task.get("args"))]
        elif module == "docker_container" and isinstance(args, dict):
            shown = {k: v for k, v in args.items() if k in CONTAINER_VISIBLE_OPTIONS}
        elif module == "docker_container_exec" and isinstance(args, dict):
            shown = {k: v for k, v in args.items() if k in {"argv", "command", "env"}}
        else:
            continue
        if secrets_in(shown):
            exposed.append(f"{where} ({module}) shows {sorted(secrets_in(shown))}")
    assert exposed == []


@pytest.mark.parametrize("pattern", [
    r"PGPASSWORD",  # a password in the environment of psql
    r"POSTGRES_PASSWORD(?!_FILE)",  # the superuser's password in the container's environment
    r"://[A-Za-z0-9_.-]+:[^@\s/'\"{}]+@",  # credentials in a URL
    r"--password[= ]",  # a password argument
])
def test_no_code_that_runs_on_a_host_passes_a_password_in_the_clear(pattern):
    sources = yaml_files() + sorted((ROOT / "roles").rglob("*.py")) \
        + sorted((ROOT / "library").glob("*.py")) + sorted((ROOT / "module_utils").glob("*.py"))
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in sources
            for n, line in enumerate(p.read_text().splitlines(), start=1) if re.search(pattern, line)]
    assert hits == []
