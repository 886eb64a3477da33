"""Pruning in the backup directory: what the policy drops goes with its sidecars; a bad newest dump fails the run."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil


def copy_as(lab, source, when, label="2.0"):
    """Copy a real dump under the name it would have had at `when`; return the new name."""
    name = f"depotix_{when.strftime('%Y%m%dT%H%M%SZ')}_{label}.dump"
    shutil.copyfile(lab.directory / source, lab.directory / name)
    (lab.directory / f"{name}.sha256").write_text(
        hashlib.sha256((lab.directory / name).read_bytes()).hexdigest() + f"  {name}\n")
    shutil.copyfile(lab.directory / f"{source}.json", lab.directory / f"{name}.json")
    return name


def test_prune_deletes_what_the_policy_drops_with_sidecars_and_leftovers(lab, dumped):
    lab.write_config(keep_last=1, keep_daily=2, keep_weekly=0)
    newest = dumped()["file"]
    now = dt.datetime.now(dt.timezone.utc)
    yesterday = now - dt.timedelta(days=1)
    early, late = (copy_as(lab, newest, yesterday.replace(hour=h, minute=0, second=0)) for h in (1, 2))
    ancient = copy_as(lab, newest, now - dt.timedelta(days=40))
    (lab.directory / f".{ancient}.partial").write_bytes(b"half")
    (lab.directory / "depotix_20200101T000000Z_1.0.dump.sha256").write_text("0  x\n")
    result = lab.run_json("prune")
    assert set(result["kept"]) == {newest, late}
    assert set(result["delete"]) == {early, ancient}
    assert lab.files() == {n + s for n in (newest, late) for s in ("", ".sha256", ".json")}


def test_prune_dry_run_deletes_nothing(lab, dumped):
    lab.write_config(keep_last=0, keep_daily=0, keep_weekly=0)
    first = dumped()["file"]
    dumped()
    before = lab.files()
    result = lab.run_json("prune", "--dry-run")
    assert result["delete"] == [first] and lab.files() == before


def test_a_newest_dump_that_fails_verification_is_removed_and_the_run_fails(lab, dumped):
    older = dumped()["file"]
    newest = dumped()["file"]
    data = bytearray((lab.directory / newest).read_bytes())
    data[-50] ^= 0xFF
    (lab.directory / newest).write_bytes(bytes(data))
    lab.write_config(keep_last=0, keep_daily=0, keep_weekly=0)
    done = lab.run("prune")
    assert done.returncode == 1 and "the newest dump failed verification" in done.stderr
    assert lab.files() == {older, f"{older}.sha256", f"{older}.json"}


def test_the_dumps_of_a_restore_in_progress_survive_pruning(lab, dumped):
    old = copy_as(lab, dumped()["file"], dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    (lab.directory / ".restore-in-progress.json").write_text(json.dumps({"dump": old}))
    lab.write_config(keep_last=0, keep_daily=0, keep_weekly=0)
    assert old in lab.run_json("prune")["kept"]


def test_the_safety_dump_of_every_run_of_a_restore_in_progress_survives_pruning(lab, dumped):
    file = dumped()["file"]
    first, second = (copy_as(lab, file, dt.datetime(2020, 1, day, tzinfo=dt.timezone.utc)) for day in (1, 2))
    record = {"dump": file, "safety_backup": first,
              "runs": [{"started": "2020-01-01T00:00:00", "safety_backup": first},
                       {"started": "2020-01-02T00:00:00", "safety_backup": second}]}
    (lab.directory / ".restore-in-progress.json").write_text(json.dumps(record))
    lab.write_config(keep_last=0, keep_daily=0, keep_weekly=0)
    kept = lab.run_json("prune")["kept"]
    assert first in kept and second in kept


def test_the_scheduled_job_dumps_then_prunes(lab, dumped):
    lab.write_config(keep_last=1, keep_daily=0, keep_weekly=0)
    first = dumped("--label", "old")["file"]
    result = lab.run_json("scheduled")
    assert result["prune"]["deleted"] == [first, f"{first}.sha256", f"{first}.json"]
    assert result["dump"]["file"].endswith("_2.0.dump") and result["offsite"]["skipped"]
