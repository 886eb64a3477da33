"""restore.yml's check for an interrupted restore (playbooks/restore/in_progress.yml), run for real.

A small play on this machine (connection local) runs the very task file restore.yml runs,
with the backup role's record of a restore in progress in a temporary backup directory:
the same request resumes it, another is refused saying what is in progress and how to
finish or discard it, a record that cannot be read stops the run, -e resume=discard
forgets it. Nothing else of restore.yml runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
RECORD = {
    "dump": "depotix_20261130T020000Z_1.0.dump",
    "args": {"backup": "latest", "migrate": False, "allow_unrecorded": False},
    "release": "1.0",
    "image": "depotix-lab/api:1.0",
    "started": "2026-11-30T09:00:00.000000+00:00",
    "safety_backup": "depotix_20261130T090001Z_1.0_before_restore.dump",
    "runs": [{"started": "2026-11-30T09:00:00.000000+00:00",
              "safety_backup": "depotix_20261130T090001Z_1.0_before_restore.dump"}],
}


def play(tmp_path: Path, record: str | None, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Run in_progress.yml against a backup directory holding `record` (None: no record)."""
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir(exist_ok=True)
    marker = backup_dir / ".restore-in-progress.json"
    if record is not None:
        marker.write_text(record)
    server = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    groups = {"backup": {"hosts": {"server": server}}, "api": {"hosts": {"server": {}}}}
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"children": groups}}))
    (tmp_path / "play.yml").write_text(f"""
- hosts: api
  gather_facts: false
  vars_files: ["{REPO}/playbooks/restore/defaults.yml"]
  vars:
    backup_dir: "{backup_dir}"
  tasks:
    - name: Check for an interrupted restore
      ansible.builtin.include_tasks: "{REPO}/playbooks/restore/in_progress.yml"
    - name: Say what is in progress
      ansible.builtin.debug:
        msg: "IN PROGRESS {{{{ restore_in_progress | to_json }}}}"
""")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.json")
    done = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=180)
    return done, marker


def messages(done: subprocess.CompletedProcess) -> str:
    """Every task result's msg, whitespace folded."""
    out = json.loads(done.stdout)
    found = [str(result.get("msg", "")) for play_ in out["plays"] for task in play_["tasks"]
             for result in task["hosts"].values()]
    return " ".join(" ".join(found).split())


def test_no_record_is_no_restore_in_progress(tmp_path):
    done, _ = play(tmp_path, None, "-e", "backup=latest")
    assert done.returncode == 0, done.stdout
    assert "IN PROGRESS {}" in messages(done)


@pytest.mark.parametrize("backup", ["latest", RECORD["dump"], f"/home/deploy/backups/{RECORD['dump']}"])
def test_the_same_request_resumes_the_restore_in_progress(tmp_path, backup):
    done, marker = play(tmp_path, json.dumps(RECORD), "-e", f"backup={backup}", "-e", "migrate=false")
    assert done.returncode == 0, done.stdout
    assert f"IN PROGRESS {json.dumps(RECORD)}" in messages(done)
    assert json.loads(marker.read_text()) == RECORD


@pytest.mark.parametrize("other", [["-e", "backup=latest", "-e", "migrate=true"],
                                   ["-e", "backup=latest", "-e", "allow_unrecorded=true"],
                                   ["-e", "backup=depotix_20261129T020000Z_1.0.dump"]])
def test_another_request_is_refused_saying_what_is_in_progress_and_how_to_finish_or_discard_it(tmp_path, other):
    done, marker = play(tmp_path, json.dumps(RECORD), *other)
    said = messages(done)
    assert done.returncode != 0
    assert (f"A restore of {RECORD['dump']} is in progress on server" in said
            and f"started {RECORD['started']}, 1 run(s) so far, the last was interrupted (killed)" in said)
    assert f"Its first safety dump {RECORD['safety_backup']} holds the state before it" in said
    assert "Run ansible-playbook restore.yml -e backup=latest to finish it" in said
    assert "add -e resume=discard to forget it (nothing is undone) and run this request. Nothing was changed." in said
    assert json.loads(marker.read_text()) == RECORD


def test_the_refusal_names_a_failed_run_and_the_options_to_resume_with(tmp_path):
    record = dict(RECORD, args={"backup": RECORD["dump"], "migrate": True, "allow_unrecorded": True},
                  failed={"task": "Start the API on the restored database", "at": "2026-11-30T09:05:00", "swapped": True})
    done, _ = play(tmp_path, json.dumps(record), "-e", "backup=latest")
    said = messages(done)
    assert done.returncode != 0
    assert "the last failed at Start the API on the restored database (2026-11-30T09:05:00)" in said
    assert f"Run ansible-playbook restore.yml -e backup={RECORD['dump']} -e migrate=true -e allow_unrecorded=true" in said


@pytest.mark.parametrize(("record", "reason"), [("{not json", ""), (json.dumps({"dump": "x.dump"}), "it lacks"),
                                               (json.dumps(["a", "list"]), "it lacks")])
def test_a_record_that_cannot_be_read_stops_the_run(tmp_path, record, reason):
    done, marker = play(tmp_path, record, "-e", "backup=latest")
    said = messages(done)
    assert done.returncode != 0
    assert f"{marker} on server records a restore in progress but cannot be read" in said and reason in said
    assert "rerun with -e resume=discard to forget it (nothing is undone). Nothing was changed." in said
    assert marker.read_text() == record


def test_discard_forgets_even_a_record_that_cannot_be_read(tmp_path):
    done, marker = play(tmp_path, "{not json", "-e", "backup=latest", "-e", "resume=discard")
    assert done.returncode == 0, done.stdout
    assert "IN PROGRESS {}" in messages(done)
    assert not marker.exists()
