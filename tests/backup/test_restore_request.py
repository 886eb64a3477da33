"""restore.yml and backup.yml refuse bad requests on the controller, before any host is contacted.

The plays run for real (ansible-playbook) against an inventory whose only host cannot be
reached: a request that got past the controller checks would show that host in the recap.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
INVENTORY = """
all:
  children:
    db: {hosts: {never-contacted: {ansible_host: 192.0.2.1, ansible_connection: ssh, ansible_timeout: 2}}}
    api: {hosts: {never-contacted: {}}}
    backup: {hosts: {never-contacted: {}}}
"""


def play(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               DEPOTIX_SECRETS_DIR=str(tmp_path / "secrets"))
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False, timeout=120)


def assert_refused_on_the_controller(done: subprocess.CompletedProcess, message: str) -> None:
    assert done.returncode != 0
    assert message in done.stdout
    assert "Nothing was changed." in done.stdout
    assert "never-contacted" not in done.stdout


def test_restore_without_backup_says_how_to_name_one(tmp_path):
    assert_refused_on_the_controller(play(tmp_path, "restore.yml"), "Say which dump to restore")


@pytest.mark.parametrize("backup", ["../Depotix/releases.json", "/etc/passwd", "/home/deploy/backups/../x.dump",
                                    "sub/x.dump"])
def test_restore_refuses_a_path_outside_the_backup_directory(tmp_path, backup):
    done = play(tmp_path, "restore.yml", "-e", f"backup={backup}")
    assert_refused_on_the_controller(done, "is not a dump of the backup directory /home/deploy/backups")


def test_restore_refuses_a_migrate_that_is_not_a_boolean(tmp_path):
    done = play(tmp_path, "restore.yml", "-e", "backup=latest", "-e", "migrate=perhaps")
    assert_refused_on_the_controller(done, "migrate is true or false")


def test_restore_refuses_a_resume_that_is_neither_resume_nor_discard(tmp_path):
    done = play(tmp_path, "restore.yml", "-e", "backup=latest", "-e", "resume=forget")
    assert_refused_on_the_controller(done, "resume must be resume (default) or discard, not 'forget'")


def test_backup_refuses_a_drill_that_is_not_a_boolean(tmp_path):
    assert_refused_on_the_controller(play(tmp_path, "backup.yml", "-e", "drill=weekly"), "drill is true or false")


@pytest.mark.parametrize("backup", ["latest", "depotix_20260101T020000Z_2.0.dump",
                                    "/home/deploy/backups/depotix_20260101T020000Z_2.0.dump"])
def test_restore_lets_a_file_of_the_backup_directory_through_to_the_hosts(tmp_path, backup):
    done = play(tmp_path, "restore.yml", "-e", f"backup={backup}")
    assert "UNREACHABLE" in done.stdout and "never-contacted" in done.stdout


def test_restore_refuses_an_allow_unrecorded_that_is_not_a_boolean(tmp_path):
    done = play(tmp_path, "restore.yml", "-e", "backup=latest", "-e", "allow_unrecorded=maybe")
    assert_refused_on_the_controller(done, "allow_unrecorded is true or false")
