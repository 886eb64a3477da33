"""The kill tests' tool (molecule/_shared/files/kill_during.py) kills the remote work, or fails.

Each test runs the real tool with a stand-in `docker` (tests/lab/support/fake_docker.py)
whose `exec <server>` runs the command here: the "server" is this machine, its "inner
containers" are processes of it. The remote work is a real process in a session of its
own, so the kill of the run's process group cannot reach it; a shell started by the test
is its parent and writes the status it reaped, which tells a SIGKILL from an ending.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "molecule" / "_shared" / "files" / "kill_during.py"
FAKE_DOCKER = Path(__file__).resolve().parent / "support" / "fake_docker.py"
BANNER = "TASK [api : Migrate every app] ***"

sys.path.insert(0, str(TOOL.parent))
import kill_during  # noqa: E402


@pytest.fixture
def world(tmp_path):
    """A docker stand-in, its container list, and a unique mark for this test's remote work."""
    state = tmp_path / "containers.json"
    state.write_text("{}")
    return {"dir": tmp_path, "state": state, "token": uuid.uuid4().hex[:12],
            "env": dict(os.environ, FAKE_DOCKER_STATE=str(state), FAKE_DOCKER_PYTHON=sys.executable)}


def start_work(world, body: str, name: str = "work") -> tuple[subprocess.Popen, Path, Path]:
    """Start remote work (a Python file named after the token) under a shell that records what it reaped."""
    script = world["dir"] / f"{name}-{world['token']}.py"
    script.write_text(body)
    rc_file = world["dir"] / f"{name}.rc"
    parent = subprocess.Popen(["sh", "-c", f'"{sys.executable}" "$0"; echo $? > "$1"', str(script), str(rc_file)],
                              start_new_session=True)
    return parent, script, rc_file


def stop(parent: subprocess.Popen) -> None:
    """Kill what a test started (the shell and its work: a session of their own), and reap the shell."""
    try:
        os.killpg(parent.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    parent.wait()


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def run_tool(world, remote: list[str], run_script: str, timeout: float = 30.0) -> tuple[int, str]:
    """Run kill_during.py on a command (a shell script); return its exit status and the log."""
    log = world["dir"] / "run.log"
    argv = [sys.executable, str(TOOL), "--log", str(log), "--at", r"^TASK \[api : Migrate", "--delay", "0.2",
            "--timeout", str(timeout), "--docker", str(FAKE_DOCKER), *remote, "--", "sh", "-c", run_script]
    done = subprocess.run(argv, env=world["env"], capture_output=True, text=True, timeout=timeout + 60)
    return done.returncode, log.read_text()


def facts(log: str) -> dict:
    line = next(line for line in log.splitlines() if line.startswith("kill_during: remote facts "))
    return json.loads(line.removeprefix("kill_during: remote facts "))


SLEEPER = "import time\ntime.sleep(120)\n"
# A parent that forks two children (same command line) and records, as it reaps each, how it ended.
FORKER = """\
import os, sys, time
children = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    children.append(pid)
with open(sys.argv[0] + ".reaped", "w") as out:
    for _ in children:
        pid, status = os.wait()
        out.write(f"{pid} {os.WTERMSIG(status) if os.WIFSIGNALED(status) else 'exit'}\\n")
        out.flush()
time.sleep(120)
"""


def test_kill_reaches_a_remote_process_the_run_group_kill_cannot_reach(world):
    parent, script, rc_file = start_work(world, SLEEPER)
    try:
        rc, log = run_tool(world, ["--server", "lab", "--remote-process", rf"^\S*python\S* \S*{script.name}$"],
                           f"echo '{BANNER}'; sleep 60")
        parent.wait(timeout=30)
    finally:
        stop(parent)
    assert rc == 0, log
    assert f"kill_during: killed the run 0.2s after: {BANNER}" in log
    found = facts(log)
    assert found["running_at_kill"] and found["gone"] and found["killed"] == found["pids"]
    assert f"running at kill; gone after {found['gone_after']} s" in log
    # Reaped by its own parent, killed by SIGKILL (a shell reports 128 + 9): not an ending of its own.
    assert rc_file.read_text().strip() == "137"


def test_a_tree_of_work_is_killed_children_first_each_reaped_by_its_parent(world):
    parent, script, rc_file = start_work(world, FORKER)
    try:
        reaped = Path(f"{script}.reaped")
        wait_for(lambda: reaped.exists())
        rc, log = run_tool(world, ["--server", "lab", "--remote-process", rf"^\S*python\S* \S*{script.name}$"],
                           f"echo '{BANNER}'; sleep 60")
        parent.wait(timeout=30)
    finally:
        stop(parent)
    assert rc == 0, log
    found = facts(log)
    assert len(found["pids"]) == 3 and found["gone"]
    children = [line.split() for line in reaped.read_text().splitlines()]
    assert sorted(int(pid) for pid, _ in children) == sorted(pid for pid in found["pids"] if pid != found["killed"][-1])
    assert {how for _, how in children} == {"9"}  # the forking parent lived to reap both
    assert rc_file.read_text().strip() == "137"  # then it was killed too


def test_kill_reaches_the_process_inside_a_named_inner_container(world):
    parent, script, rc_file = start_work(world, SLEEPER)
    try:
        # The container "api" of the stand-in is this very machine (the work's PID namespace).
        world["state"].write_text(json.dumps({"api": parent.pid}))
        rc, log = run_tool(world, ["--server", "lab", "--remote-in", "api",
                                   "--remote-process", rf"^\S*python\S* \S*{script.name}$"],
                           f"echo '{BANNER}'; sleep 60")
        parent.wait(timeout=30)
    finally:
        stop(parent)
    assert rc == 0, log
    assert facts(log)["what"].endswith("in container api")
    assert rc_file.read_text().strip() == "137"


def test_a_one_off_container_is_killed_with_docker_kill(world):
    parent, script, rc_file = start_work(world, SLEEPER)
    try:
        name = f"django-migration-{world['token']}"
        wait_for(lambda: kill_during.matching(kill_during.re.compile(script.name + "$"),
                                              kill_during.pid_namespace(os.getpid())) != [])
        work = kill_during.matching(kill_during.re.compile(script.name + "$"), kill_during.pid_namespace(os.getpid()))
        world["state"].write_text(json.dumps({name: work[0].pid}))
        rc, log = run_tool(world, ["--server", "lab", "--remote-container", "^django-migration-"],
                           f"echo '{BANNER}'; sleep 60")
        parent.wait(timeout=30)
    finally:
        stop(parent)
    assert rc == 0, log
    found = facts(log)
    assert found["what"] == f"one-off container {name}" and found["killed"] == [name] and found["gone"]
    assert rc_file.read_text().strip() == "137"


def test_remote_work_never_seen_running_fails_the_test(world):
    rc, log = run_tool(world, ["--server", "lab", "--remote-process", f"^never-runs-{world['token']}$"],
                       f"echo '{BANNER}'; sleep 60", timeout=3)
    assert rc == 1
    assert "running at kill" not in log
    assert "was never seen running" in log or "the remote work never ran" in log


def test_a_run_that_ends_before_the_remote_work_runs_fails_the_test(world):
    rc, log = run_tool(world, ["--server", "lab", "--remote-process", f"^never-runs-{world['token']}$"],
                       f"echo '{BANNER}'; exit 0")
    assert rc == 1
    assert "kill_during: the run ended (rc 0) before the kill" in log


def test_the_runs_whole_process_group_is_killed_too(world):
    parent, script, rc_file = start_work(world, SLEEPER)
    marker = world["dir"] / "still-running"
    try:
        # The run keeps touching a file while it lives: after the tool returns, the file must not change.
        rc, log = run_tool(world, ["--server", "lab", "--remote-process", rf"^\S*python\S* \S*{script.name}$"],
                           f"echo '{BANNER}'; while :; do date +%s%N > {marker}; sleep 0.05; done")
        parent.wait(timeout=30)
    finally:
        stop(parent)
    assert rc == 0, log
    before = marker.read_text()
    time.sleep(0.3)
    assert marker.read_text() == before


@pytest.mark.parametrize("argv", [
    ["--server", "lab"],
    ["--server", "lab", "--remote-process", "x", "--remote-container", "y"],
    ["--remote-process", "x"],
])
def test_remote_options_must_name_one_kind_of_work_on_a_server(argv):
    with pytest.raises(SystemExit):
        kill_during.parse_args(["--log", "f", "--at", "x", *argv, "--", "true"])


def test_a_process_whose_name_holds_spaces_and_parentheses_is_read(tmp_path):
    child = subprocess.Popen(["bash", "-c", "exec -a 'odd (name) x' sleep 30"])
    try:
        # Until bash has exec'd, the process is bash (and mid-exec its command line may read empty).
        wait_for(lambda: (p := kill_during.read_proc(child.pid)) is not None and p.args.startswith("odd (name) x"))
        proc = kill_during.read_proc(child.pid)
        assert proc is not None and proc.ppid == os.getpid() and proc.args.startswith("odd (name) x")
    finally:
        child.kill()
        child.wait()


def test_remote_work_seen_only_after_the_run_left_the_chosen_task_fails_the_test(world):
    parent, script, rc_file = start_work(world, SLEEPER)
    try:
        # The work runs all along, but the banner of the next task comes before the first look.
        rc, log = run_tool(world, ["--server", "lab", "--remote-process", rf"^\S*python\S* \S*{script.name}$"],
                           f"echo '{BANNER}'; echo 'TASK [api : Next task] ***'; sleep 60")
    finally:
        stop(parent)
    assert rc == 1
    assert "left the chosen task (TASK [api : Next task] ***)" in log
    assert "running at kill" not in log
