"""The module run by ansible-playbook itself: AnsiballZ ships the probe to the fake docker CLI.

One play runs the rhythm every change follows: check mode (reports, changes
nothing), for real (changes), again (changes nothing). The ansible.posix.json
callback reports each task's result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import BILLING, FIXTURE_PROJECT, LIBRARY, MODULE_UTILS, applied_rows, fixture_env

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAYBOOK = """
- name: Exercise django_migration
  hosts: localhost
  gather_facts: false
  module_defaults:
    django_migration:
      container: api
      docker_cli: {docker}
  tasks:
    - name: Read the migration state
      django_migration: {{}}
      register: state_read
    - name: Plan billing's migrations
      django_migration:
        state: migrated
        app: billing
      check_mode: true
      diff: true
      register: planned
    - name: Migrate billing
      django_migration:
        state: migrated
        app: billing
      register: migrated
    - name: Migrate billing again
      django_migration:
        state: migrated
        app: billing
"""


def task_results(report: dict) -> dict:
    """Return {task name: localhost's result} from the ansible.posix.json callback's report."""
    tasks = report["plays"][0]["tasks"]
    return {task["task"]["name"]: task["hosts"]["localhost"] for task in tasks}


def test_playbook_plans_in_check_mode_migrates_then_changes_nothing(tmp_path: Path, docker_cli: Path) -> None:
    db = tmp_path / "db.sqlite3"
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\nlibrary = {}\nmodule_utils = {}\ninterpreter_python = {}\n".format(
            LIBRARY, MODULE_UTILS, sys.executable
        )
    )
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(docker=docker_cli))
    env = fixture_env(
        db,
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        FAKE_DOCKER_LOG=str(tmp_path / "docker-calls.jsonl"),
        FAKE_DOCKER_CONTAINERS="api=running",
        FAKE_DOCKER_PYTHON=sys.executable,
        FAKE_DOCKER_PROJECT=str(FIXTURE_PROJECT),
    )

    completed = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=env,
        timeout=180,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    outcome = task_results(json.loads(completed.stdout))
    query, planned = outcome["Read the migration state"], outcome["Plan billing's migrations"]
    migrated, again = outcome["Migrate billing"], outcome["Migrate billing again"]
    assert query["changed"] is False
    assert query["apps"]["billing"]["unapplied"] == BILLING
    assert planned["changed"] is True
    assert len(planned["plan"]) == 4
    assert "billing.0002_invoice_note" in planned["diff"]["after"]
    assert migrated["changed"] is True
    assert migrated["after"]["billing"] == BILLING
    assert "diff" not in migrated
    assert again["changed"] is False
    assert applied_rows(db, "billing") == ["billing.%s" % name for name in BILLING]
    calls = [json.loads(line) for line in (tmp_path / "docker-calls.jsonl").read_text().splitlines()]
    assert [call[0] for call in calls] == ["exec"] * 4
    assert "[WARNING]" not in completed.stderr, completed.stderr
