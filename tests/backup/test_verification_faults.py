"""A hiccup is not corruption: prune deletes the newest dump only when it is damaged, never when a check cannot run.

Damaged is a checksum that differs, or an archive pg_restore reads and rejects. A
stopped container, a docker CLI that fails or a daemon that does not answer delete
nothing: the run fails, saying why.
"""

from __future__ import annotations

import hashlib
import time

import pytest


def contents(lab) -> dict[str, str]:
    return {name: hashlib.sha256((lab.directory / name).read_bytes()).hexdigest() for name in lab.files()}


def two_dumps_to_prune(lab, dumped) -> dict[str, str]:
    """An older and a newest dump, and a policy that would delete the older: return the files' digests."""
    dumped()
    dumped()
    lab.write_config(keep_last=1, keep_daily=0, keep_weekly=0)
    return contents(lab)


@pytest.mark.parametrize(("fault", "says"), [
    ({"FAKE_DOCKER_STOPPED": "1"}, "is not running"),
    ({"FAKE_DOCKER_DAEMON_DOWN": "1"}, "Cannot connect to the Docker daemon"),
])
def test_prune_keeps_everything_when_docker_cannot_verify_the_newest_dump(lab, dumped, fault, says):
    before = two_dumps_to_prune(lab, dumped)
    done = lab.run("prune", env=fault)
    assert done.returncode == 1
    assert "could not be verified" in done.stderr and says in done.stderr
    assert "nothing was deleted" in done.stderr and "failed verification" not in done.stderr
    assert contents(lab) == before


def test_prune_keeps_everything_when_the_docker_cli_cannot_run(lab, dumped, tmp_path):
    before = two_dumps_to_prune(lab, dumped)
    lab.write_config(docker=str(tmp_path / "no-such-docker"))
    done = lab.run("prune")
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1
    assert "could not be verified" in done.stderr and "cannot run" in done.stderr
    assert contents(lab) == before


def test_prune_gives_up_on_a_daemon_that_does_not_answer_and_keeps_everything(lab, dumped):
    before = two_dumps_to_prune(lab, dumped)
    lab.write_config(docker_timeout=2)
    started = time.monotonic()
    done = lab.run("prune", env={"FAKE_DOCKER_HANG": "120"})
    assert time.monotonic() - started < 60
    assert done.returncode == 1
    assert "could not be verified" in done.stderr and "did not answer within 2 s" in done.stderr
    assert contents(lab) == before


def test_an_archive_pg_restore_rejects_still_counts_as_damaged(lab, dumped):
    older = dumped()["file"]
    newest = dumped()["file"]
    garbage = b"PGDMP" + bytes(range(256)) * 8  # its checksum matches: pg_restore is what refuses it
    (lab.directory / newest).write_bytes(garbage)
    (lab.directory / f"{newest}.sha256").write_text(f"{hashlib.sha256(garbage).hexdigest()}  {newest}\n")
    lab.write_config(keep_last=0, keep_daily=0, keep_weekly=0)
    done = lab.run("prune")
    assert done.returncode == 1 and "the newest dump failed verification" in done.stderr
    assert "pg_restore --list rejects" in done.stderr
    assert lab.files() == {older, f"{older}.sha256", f"{older}.json"}


def test_verify_says_a_stopped_container_is_no_verdict_on_the_dump(lab, dumped):
    name = dumped()["file"]
    done = lab.run("verify", name, env={"FAKE_DOCKER_STOPPED": "1"})
    assert done.returncode == 1
    assert "could not run" in done.stderr and "rejects" not in done.stderr
