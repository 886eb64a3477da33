"""The host lock: one run at a time changes a host, a second is refused naming the holder, a stale lock is broken.

The file logic (module_utils/host_lock.py) is tested with real processes racing for the
lock and a writer killed half-way; the module runs in-process through AnsibleModule; the
controller's half (the host_lock role's action plugin) is tested on real processes, alive
and gone.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import host_lock as host_lock_module
import pytest
from ansible.module_utils.host_lock import LockHeld, acquire, read_holder, release
from ansible.module_utils.testing import patch_module_args
from conftest import LIBRARY, MODULE_UTILS, REPO

PLUGIN_PATH = REPO / "roles" / "host_lock" / "action_plugins" / "host_lock.py"
_spec = importlib.util.spec_from_file_location("host_lock_action", PLUGIN_PATH)
plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin)


def holder(run_id: str, **extra: Any) -> Dict[str, Any]:
    return dict({"run_id": run_id, "who": "ops@controller", "playbook": "deploy.yml"}, **extra)


# --- taking and giving back ------------------------------------------------------------------


def _race(path: str, run_id: str, start: Any, results: Any) -> None:
    start.wait()
    try:
        acquire(path, holder(run_id))
        results.put(("won", run_id))
    except LockHeld as held:
        results.put(("refused", held.holder["run_id"]))


def test_of_many_runs_racing_for_the_lock_exactly_one_takes_it_and_the_others_name_it(tmp_path: Path) -> None:
    path = str(tmp_path / "run.lock")
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    racers = [context.Process(target=_race, args=(path, "run-%d" % n, start, results)) for n in range(8)]
    for racer in racers:
        racer.start()
    start.set()
    for racer in racers:
        racer.join(30)
    outcomes = [results.get(timeout=5) for _ in racers]

    winners = [run_id for outcome, run_id in outcomes if outcome == "won"]
    assert len(winners) == 1
    assert [run_id for outcome, run_id in outcomes if outcome == "refused"] == winners * 7
    assert read_holder(path)["run_id"] == winners[0]
    assert sorted(item.name for item in tmp_path.iterdir()) == ["run.lock"]


def test_the_same_run_taking_the_lock_again_changes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "run.lock")
    first = acquire(path, holder("run-1", since="t1"))
    again = acquire(path, holder("run-1", since="t2"))

    assert (first["changed"], again["changed"]) == (True, False)
    assert read_holder(path)["since"] == "t1"


def test_a_lock_is_broken_only_when_break_run_names_its_very_holder(tmp_path: Path) -> None:
    path = str(tmp_path / "run.lock")
    acquire(path, holder("stale-run"))

    with pytest.raises(LockHeld) as held:
        acquire(path, holder("run-2"), break_run="some-other-run")
    broke = acquire(path, holder("run-2"), break_run="stale-run")
    # A third run that read the same stale lock cannot break run-2's lock with it.
    with pytest.raises(LockHeld) as late:
        acquire(path, holder("run-3"), break_run="stale-run")

    assert held.value.holder["run_id"] == "stale-run"
    assert broke["changed"] and broke["broken"]["run_id"] == "stale-run"
    assert late.value.holder["run_id"] == "run-2"
    assert read_holder(path)["run_id"] == "run-2"


def test_release_removes_only_the_lock_of_the_run_that_holds_it(tmp_path: Path) -> None:
    path = str(tmp_path / "run.lock")
    acquire(path, holder("run-1"))

    other = release(path, "run-2")
    still = read_holder(path)
    own = release(path, "run-1")
    again = release(path, "run-1")

    assert (other["changed"], other["holder"]["run_id"]) == (False, "run-1")
    assert still["run_id"] == "run-1"
    assert own == {"changed": True, "released": True, "holder": None}
    assert again["changed"] is False
    assert not os.path.exists(path)


def test_check_mode_takes_nothing_but_still_refuses_a_held_lock(tmp_path: Path) -> None:
    path = str(tmp_path / "run.lock")

    planned = acquire(path, holder("run-1"), check_mode=True)
    assert planned["changed"] and not os.path.exists(path)

    acquire(path, holder("run-1"))
    with pytest.raises(LockHeld):
        acquire(path, holder("run-2"), check_mode=True)
    assert release(path, "run-1", check_mode=True)["changed"] and read_holder(path)["run_id"] == "run-1"


def test_a_file_that_is_no_lock_record_still_locks_and_only_that_content_can_be_broken(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    path.write_text("")

    with pytest.raises(LockHeld) as held:
        acquire(str(path), holder("run-1"))
    unreadable = held.value.holder
    path.write_text("{half")
    with pytest.raises(LockHeld):
        acquire(str(path), holder("run-1"), break_run=unreadable["run_id"])
    changed = read_holder(str(path))
    broke = acquire(str(path), holder("run-1"), break_run=changed["run_id"])

    assert unreadable["run_id"].startswith("unreadable-") and "does not hold a lock record" in unreadable["unreadable"]
    assert changed["run_id"] != unreadable["run_id"]
    assert broke["changed"] and read_holder(str(path))["run_id"] == "run-1"


KILLED_WHILE_WRITING = r"""
import json, os, signal, sys
sys.path.insert(0, sys.argv[1])
import host_lock

def dump_half_then_die(data, handle, **kwargs):
    handle.write(json.dumps(data)[:20])
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)

host_lock.json.dump = dump_half_then_die
host_lock.acquire(sys.argv[2], {"run_id": "killed-run"})
"""


def test_a_run_killed_while_writing_its_lock_leaves_no_half_lock(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_WRITING, str(MODULE_UTILS), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [item.name.startswith(".run.lock.") for item in tmp_path.iterdir()] == [True]
    assert not path.exists()
    assert acquire(str(path), holder("next-run"))["changed"]
    assert read_holder(str(path))["run_id"] == "next-run"


# --- the module ------------------------------------------------------------------------------


def run_lock_module(capsys: pytest.CaptureFixture, check_mode: bool = False, **args: Any) -> Dict[str, Any]:
    args.update(_ansible_check_mode=check_mode)
    with patch_module_args(args), pytest.raises(SystemExit):
        host_lock_module.main()
    return json.loads(capsys.readouterr().out)


def test_module_takes_the_lock_then_fails_for_another_run_naming_the_holder(tmp_path: Path, capsys) -> None:
    path = tmp_path / "fresh" / "run.lock"
    record = {"who": "ops@controller", "playbook": "deploy.yml", "arguments": {"api_release": "2.0"}}

    taken = run_lock_module(capsys, path=str(path), run_id="run-1", holder=record)
    refused = run_lock_module(capsys, path=str(path), run_id="run-2", holder={"playbook": "site.yml"})
    released = run_lock_module(capsys, path=str(path), run_id="run-1", state="released")

    assert taken["changed"] and taken["acquired"] and taken["holder"] == dict(record, run_id="run-1")
    assert refused["failed"] and refused["acquired"] is False
    assert refused["holder"] == dict(record, run_id="run-1")
    assert refused["msg"] == "%s is held by run run-1; nothing was changed." % path
    assert released["changed"] and released["released"] and not path.exists()


def test_module_in_check_mode_on_a_fresh_host_creates_nothing(tmp_path: Path, capsys) -> None:
    path = tmp_path / "fresh" / "run.lock"

    result = run_lock_module(capsys, check_mode=True, path=str(path), run_id="run-1")

    assert result["acquired"] and not path.parent.exists()


def test_host_lock_documentation_matches_its_argument_spec() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-doc")), "-M", str(LIBRARY), "-j", "host_lock"],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        timeout=120,
        check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
    )
    assert done.returncode == 0, done.stderr
    documented = json.loads(done.stdout)["host_lock"]["doc"]["options"]

    assert set(documented) == set(host_lock_module.ARGUMENT_SPEC)
    for name, spec in host_lock_module.ARGUMENT_SPEC.items():
        assert documented[name]["type"] == spec["type"], name
        assert documented[name].get("default") == spec.get("default"), name
        assert documented[name].get("choices") == spec.get("choices"), name


# --- the controller's half: is the holder's run still going? --------------------------------


def test_a_run_is_the_same_for_every_task_and_names_the_ansible_playbook_process() -> None:
    first, second = plugin.this_run(), plugin.this_run()

    assert first == second
    assert first["pid"] == os.getppid()
    assert first["run_id"] == "%s/%d/%s" % (first["who"], first["pid"], first["pid_start"])


def test_holder_whose_process_runs_is_running_and_gone_once_it_ended() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = plugin.this_run()
        lock = plugin.this_run(pid=process.pid)
        assert plugin.holder_state(lock, me) == plugin.RUNNING
    finally:
        process.kill()
    # Killed but not reaped yet (a zombie, as a killed run whose parent does not reap it stays): gone.
    for _ in range(50):
        if Path("/proc/%d/stat" % process.pid).read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.1)
    assert plugin.holder_state(lock, me) == plugin.GONE
    process.wait()

    assert plugin.holder_state(lock, me) == plugin.GONE
    # The same pid started again later is another process: its start differs.
    assert plugin.holder_state(dict(lock, pid=os.getpid()), me) == plugin.GONE


def test_holder_from_another_controller_or_unreadable_cannot_be_judged() -> None:
    me = plugin.this_run()

    assert plugin.holder_state(dict(me, controller="ops2"), me) == plugin.UNKNOWN
    assert plugin.holder_state({"run_id": "unreadable-ab", "unreadable": "no record"}, me) == plugin.UNKNOWN


LOCKED_BY = {
    "run_id": "ops@c1/4242/x:1",
    "who": "ops@c1",
    "playbook": "deploy.yml",
    "controller": "c1",
    "arguments": {"api_release": "2.0"},
    "since": "2026-01-01T02:00:00+00:00",
    "pid": 4242,
}


@pytest.mark.parametrize(
    "state, says",
    [
        (plugin.RUNNING, "which is still running. Wait for it to end, then run again."),
        (
            plugin.GONE,
            "the lock looks stale (a killed run leaves it). Check that nothing else is changing api1, "
            "then rerun with -e break_lock=true.",
        ),
        (
            plugin.UNKNOWN,
            "cannot be checked from this controller: wait for it to end or, if it is gone, rerun with "
            "-e break_lock=true.",
        ),
    ],
)
def test_refusal_names_the_holder_and_says_what_to_do(state: str, says: str) -> None:
    message = plugin.refusal("api1", LOCKED_BY, state, break_lock=False)

    assert message.startswith(
        "api1 is locked by ops@c1 running deploy.yml api_release=2.0 since 2026-01-01T02:00:00+00:00 "
        "(run ops@c1/4242/x:1, ansible-playbook pid 4242 on c1)"
    )
    assert says in message
    assert message.endswith("Nothing was changed.")


def test_break_lock_does_not_break_a_run_still_going() -> None:
    message = plugin.refusal("api1", LOCKED_BY, plugin.RUNNING, break_lock=True)

    assert "break_lock does not break the lock of a run that is still going" in message


# --- real ansible-playbook runs on this machine ------------------------------------------------

LOCKED_PLAY = """
- name: Change the host under its lock
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Work under the host lock
      block:
        - name: Take the host lock
          ansible.builtin.include_role:
            name: host_lock
            tasks_from: acquire
          vars:
            host_lock_path: "{{ lock_path }}"
            host_lock_playbook: change.yml
            host_lock_arguments: {api_release: "2.0"}
            host_lock_break: "{{ break_lock | default(false) | bool }}"
        - name: Hold it while working
          ansible.builtin.wait_for:
            timeout: "{{ hold | default(0) | int }}"
          when: hold | default(0) | int > 0
        - name: Fail when asked to
          ansible.builtin.fail:
            msg: failing on purpose
          when: fail | default(false) | bool
      always:
        - name: Give the host lock back
          ansible.builtin.include_role:
            name: host_lock
            tasks_from: release
          vars:
            host_lock_path: "{{ lock_path }}"
"""


class Runs:
    """ansible-playbook runs of LOCKED_PLAY against this machine, all with the same lock file."""

    def __init__(self, tmp_path: Path) -> None:
        self.lock = tmp_path / "lock" / "run.lock"
        self.playbook = tmp_path / "change.yml"
        self.playbook.write_text(LOCKED_PLAY)
        (tmp_path / "ansible.cfg").write_text(
            "[defaults]\nroles_path = %s\nlibrary = %s\nmodule_utils = %s\n" % (REPO / "roles", LIBRARY, MODULE_UTILS)
        )
        self.cwd = tmp_path
        self.env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
            ANSIBLE_HOME=str(tmp_path / "ansible-home"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
        )

    def argv(self, *extra: str) -> list:
        return [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=%s" % sys.executable,
            "-e",
            "lock_path=%s" % self.lock,
            str(self.playbook),
            *extra,
        ]

    def start(self, *extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(*extra),
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def run(self, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(*extra), cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=180, check=False
        )

    def held_by(self, pid: int) -> bool:
        return self.lock.exists() and read_holder(str(self.lock)).get("pid") == pid


def said(completed: subprocess.CompletedProcess) -> str:
    return " ".join((completed.stdout + completed.stderr).split())


def test_real_runs_second_refused_while_first_runs_stale_after_a_kill_then_broken(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    first = runs.start("-e", "hold=120")
    try:
        for _ in range(600):
            if runs.held_by(first.pid) or first.poll() is not None:
                break
            time.sleep(0.1)
        assert runs.held_by(first.pid), first.communicate()[0] if first.poll() is not None else "never held"
        held = read_holder(str(runs.lock))

        refused = runs.run()
        breaking_a_live_run = runs.run("-e", "break_lock=true")
        assert first.poll() is None
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    stale = runs.run()
    broken = runs.run("-e", "break_lock=true")

    assert held["playbook"] == "change.yml" and held["arguments"] == {"api_release": "2.0"}
    assert refused.returncode != 0
    named = "localhost is locked by %s running change.yml api_release=2.0 since %s" % (held["who"], held["since"])
    assert named in said(refused)
    assert "ansible-playbook pid %d on" % first.pid in said(refused)
    assert "which is still running. Wait for it to end, then run again." in said(refused)
    assert breaking_a_live_run.returncode != 0
    assert "break_lock does not break the lock of a run that is still going" in said(breaking_a_live_run)
    # The kill left the lock behind; the next run calls it stale, and break_lock breaks it.
    assert stale.returncode != 0
    assert "ansible-playbook pid %d on" % first.pid in said(stale)
    assert "the lock looks stale (a killed run leaves it)" in said(stale)
    assert broken.returncode == 0, said(broken)
    assert "Broke the lock of %s running change.yml" % held["who"] in said(broken)
    assert not runs.lock.exists()


def test_real_run_that_fails_gives_the_lock_back(tmp_path: Path) -> None:
    runs = Runs(tmp_path)

    failed = runs.run("-e", "fail=true")

    # The run took the lock (its directory was made for it), then failed, and gave it back.
    assert failed.returncode != 0 and "failing on purpose" in said(failed)
    assert runs.lock.parent.is_dir()
    assert "TASK [host_lock : Give the host's run lock back]" in failed.stdout
    assert not runs.lock.exists()


def test_real_check_run_takes_no_lock_and_is_refused_while_another_run_holds_it(tmp_path: Path) -> None:
    runs = Runs(tmp_path)

    checked = runs.run("--check")
    nothing_written = not runs.lock.parent.exists()
    runs.lock.parent.mkdir()
    acquire(str(runs.lock), holder("ops@elsewhere/1/x", controller="elsewhere", pid=1))
    refused = runs.run("--check")

    assert checked.returncode == 0, said(checked)
    assert nothing_written
    assert refused.returncode != 0
    assert "That run cannot be checked from this controller" in said(refused)
    assert read_holder(str(runs.lock))["run_id"] == "ops@elsewhere/1/x"
