"""The offsite hook: off by default, a command or an rsync target, run after a verified dump."""

from __future__ import annotations

import hashlib

from depotix_backup.offsite import offsite_argv


def test_no_offsite_copy_is_configured_by_default():
    assert offsite_argv({"offsite_command": "", "offsite_rsync_target": ""}, ["a.dump"]) is None


def test_an_offsite_command_gets_the_dump_and_its_sidecars_without_a_shell():
    argv = offsite_argv({"offsite_command": "aws s3 cp --quiet 'x y'"}, ["a.dump", "a.dump.sha256"])
    assert argv == ["aws", "s3", "cp", "--quiet", "x y", "a.dump", "a.dump.sha256"]


def test_an_rsync_target_copies_the_files_there_private():
    argv = offsite_argv({"offsite_rsync_target": "vault:/srv/depotix/"}, ["a.dump"])
    assert argv == ["rsync", "-a", "--chmod=F600", "a.dump", "vault:/srv/depotix/"]


def test_the_scheduled_job_copies_the_verified_dump_offsite(lab, tmp_path):
    offsite = tmp_path / "offsite"
    offsite.mkdir()
    lab.write_config(offsite_command=f"cp -t {offsite}")
    result = lab.run_json("scheduled")
    name = result["dump"]["file"]
    assert sorted(p.name for p in offsite.iterdir()) == [name, f"{name}.json", f"{name}.sha256"]
    assert hashlib.sha256((offsite / name).read_bytes()).hexdigest() == result["dump"]["sha256"]


def test_a_failed_offsite_copy_fails_the_run_but_keeps_the_verified_dump(lab):
    lab.write_config(offsite_command="false")
    done = lab.run("scheduled")
    assert done.returncode == 1
    assert "the offsite copy of" in done.stderr and "the dump is kept here, verified" in done.stderr
    dumps = [name for name in lab.files() if name.endswith(".dump")]
    assert len(dumps) == 1 and lab.run("verify", dumps[0]).returncode == 0
