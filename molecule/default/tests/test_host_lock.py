"""One change at a time: what the real runs of side_effect.yml (lock_runs.sh) observed, and the host after them.

Each case first checks that its fault happened (a run really held the lock while the
second one started; a run really was killed holding it; a foreign lock really was in
place), then what the refused or breaking run said and what the host was left with.
"""

import json
import os
import re
from pathlib import Path

import pytest
from depotix_checks import run_log

LOCK = "/var/lib/depotix/run.lock"


def observed(case: str) -> dict:
    return json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / f"lock_{case}.json").read_text())


def said(name: str) -> str:
    """Return a kept run's output with its whitespace collapsed (a long message may be wrapped)."""
    return " ".join(run_log(name).split())


def recap_of(name: str) -> dict[str, int]:
    """Return the lab server's counts in a kept run's PLAY RECAP."""
    text = run_log(name).split("PLAY RECAP", 1)[1]
    line = next(line for line in text.splitlines() if line.startswith("depotix-"))
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


def test_a_second_run_is_refused_while_the_first_holds_the_lock_and_the_refusal_names_it():
    seen = observed("live")
    pid = int(seen["holder_pid"])
    # The fault: the first run held the lock, and still ran once the second had been refused.
    assert seen["held"]["pid"] == pid
    assert seen["held"]["playbook"] == "site.yml"
    assert seen["holder_after"] == "running"
    refusal = said("lock_live_refused")
    assert seen["refused_rc"] != "0"
    assert f"is locked by {seen['held']['who']} running site.yml since {seen['held']['since']}" in refusal
    assert f"(run {seen['held']['run_id']}, ansible-playbook pid {pid} on " in refusal
    assert "which is still running. Wait for it to end, then run again." in refusal
    assert recap_of("lock_live_refused")["changed"] == 0
    # The first run was not disturbed, and gave the lock back.
    assert seen["holder_rc"] == "0"
    assert recap_of("lock_holder")["failed"] == 0
    assert seen["left"] is None


def test_a_killed_run_leaves_a_stale_lock_that_is_refused_with_the_break_lock_hint():
    seen = observed("killed")
    pid = int(seen["holder_pid"])
    # The fault: the run was killed (SIGKILL) while it held the lock, and the lock stayed behind.
    assert seen["holder_rc"] == str(128 + 9)
    assert seen["held"]["pid"] == pid
    assert seen["left_by_kill"] == seen["held"]
    stale = said("lock_stale")
    assert seen["stale_rc"] != "0"
    assert f"ansible-playbook pid {pid} on " in stale
    assert "the lock looks stale (a killed run leaves it)" in stale
    assert "rerun with -e break_lock=true" in stale
    assert recap_of("lock_stale")["changed"] == 0


def test_break_lock_breaks_the_stale_lock_converges_and_leaves_no_lock():
    seen = observed("killed")
    broke = said("lock_break")
    assert seen["break_rc"] == "0"
    assert f"Broke the lock of {seen['held']['who']} running site.yml" in broke
    assert f"ansible-playbook pid {seen['holder_pid']} on " in broke
    assert recap_of("lock_break")["failed"] == 0
    assert seen["left"] is None


def test_a_lock_from_another_controller_is_refused_naming_it():
    seen = observed("elsewhere")
    assert seen["held"]["controller"] == "ops-elsewhere"
    refusal = said("lock_elsewhere_refused")
    assert seen["refused_rc"] != "0"
    assert (
        "is locked by deploy@ops-elsewhere running deploy.yml api_release=2.0 since 2026-01-01T02:00:00+00:00"
        in refusal
    )
    assert "That run cannot be checked from this controller" in refusal


def test_check_mode_neither_takes_nor_breaks_nor_leaves_a_lock():
    seen = observed("elsewhere")
    assert seen["check_rc"] == "0"
    assert "Would break the lock of deploy@ops-elsewhere running deploy.yml" in said("lock_elsewhere_check")
    assert seen["after_check"] == seen["held"]
    assert recap_of("lock_elsewhere_check")["failed"] == 0


def test_a_deploy_that_fails_after_taking_the_lock_gives_it_back():
    seen = observed("elsewhere")
    failed = said("lock_elsewhere_failed_deploy")
    # The fault: the deploy took the lock (breaking the foreign one), then failed.
    assert "Broke the lock of deploy@ops-elsewhere running deploy.yml" in failed
    assert seen["failed_rc"] != "0"
    assert recap_of("lock_elsewhere_failed_deploy")["failed"] >= 1
    assert seen["left"] is None


@pytest.mark.parametrize("name", ["lock_holder", "lock_break"])
def test_runs_that_ended_normally_took_and_gave_back_the_lock(name):
    log = run_log(name)
    assert "TASK [host_lock : Take the host's run lock for site.yml]" in log
    assert "TASK [host_lock : Give the host's run lock back]" in log


def test_no_lock_is_left_on_the_host(host):
    assert not host.file(LOCK).exists
