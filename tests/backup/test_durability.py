"""Durable on disk: each file flushed before its rename, the record renamed last; a torn record is refused.

A crash is simulated at each flush and rename of a dump (the package runs in this
process; the step raises and nothing is cleaned up, as when the process dies): what
counts as good afterwards is either the complete, verifiable dump or nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import depotix_backup.dump
from depotix_backup.errors import BackupError
from depotix_backup.names import list_dumps, load_record, resolve_dump
from depotix_backup.retention import cmd_prune
from depotix_backup.verify import cmd_verify


class Crash(BaseException):
    """The process dies here."""


class DiskLog:
    """Records the flushes and renames in the backup directory; raises Crash at step `crash_at`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
        self.directory, self.events, self.crash_at = directory, [], None
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            target = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if target == self.directory or target.parent == self.directory:
                self.step(("fsync", "<dir>" if target == self.directory else target.name))
            real_fsync(fd)

        def replace(src, dst) -> None:
            if Path(src).parent == self.directory:
                self.step(("rename", Path(src).name, Path(dst).name))
            real_replace(src, dst)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)

    def step(self, event: tuple) -> None:
        if self.crash_at is not None and len(self.events) == self.crash_at:
            raise Crash(event)
        self.events.append(event)


def test_every_file_is_flushed_before_its_rename_and_the_record_is_renamed_last(lab, inproc, monkeypatch):
    disk = DiskLog(monkeypatch, lab.directory)
    name = inproc.dump()["file"]
    events = disk.events
    renames = {e[2]: i for i, e in enumerate(events) if e[0] == "rename"}
    assert set(renames) == {name, f"{name}.sha256", f"{name}.json"}
    for final, index in renames.items():
        assert ("fsync", events[index][1]) in events[:index], f"{final} renamed before it was flushed"
    record = renames[f"{name}.json"]
    assert record == max(renames.values())
    assert ("fsync", "<dir>") in events[max(renames[name], renames[f"{name}.sha256"]):record]
    assert events[-1] == ("fsync", "<dir>")


def test_a_crash_at_any_step_leaves_the_complete_dump_or_nothing_that_counts(lab, inproc, monkeypatch):
    disk = DiskLog(monkeypatch, lab.directory)
    inproc.dump()
    steps = len(disk.events)
    for crash_at in range(steps + 1):
        for path in lab.directory.iterdir():
            path.unlink()
        disk.events, disk.crash_at = [], crash_at
        with monkeypatch.context() as crashing:
            crashing.setattr(depotix_backup.dump, "remove_quietly", lambda *paths: [])  # a dead process cleans nothing
            try:
                name = inproc.dump()["file"]
            except Crash:
                name = None
        disk.crash_at = None
        good = [d.name for d in list_dumps(lab.config) if d.good]
        record_renamed = any(e[0] == "rename" and e[2].endswith(".json") for e in disk.events)
        if record_renamed:  # the last rename: the dump is complete, even if the process died after it
            assert len(good) == 1 and cmd_verify(lab.config, good[0])["unchecked"] == []
            assert resolve_dump(lab.config, "latest") == good[0]
        else:
            assert good == [], f"crash at step {crash_at} {disk.events}: {good} counts as good"
            with pytest.raises(BackupError, match="there is no complete dump"):
                resolve_dump(lab.config, "latest")
        cmd_prune(lab.config, dry_run=False)
        assert lab.files() == {n + s for n in good for s in ("", ".sha256", ".json")}
    assert crash_at == steps and name is not None


def tear(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


@pytest.mark.parametrize("damage", ["torn", "without tables", "missing"])
def test_verify_and_restore_refuse_a_dump_whose_record_is_torn_or_missing(lab, dumped, damage):
    name = dumped()["file"]
    record = lab.directory / f"{name}.json"
    if damage == "torn":
        tear(record)
    elif damage == "without tables":
        record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "tables"}))
    else:
        record.unlink()
    lab.sql("DELETE FROM inventory_stockmovement WHERE id <= 100")
    before, databases = lab.rows_digest(), lab.databases()
    for command in ("verify", "restore"):
        done = lab.run(command, name)
        assert done.returncode == 1 and f"{name}.json is" in done.stderr and "--allow-unrecorded" in done.stderr
    assert (lab.rows_digest(), lab.databases()) == (before, databases)
    listed = lab.run_json("list")["dumps"][0]
    assert (listed["complete"], listed["problem"].startswith(f"{name}.json is")) == (False, True)


def test_allow_unrecorded_accepts_such_a_dump_and_says_what_went_unchecked(lab, dumped):
    at_dump = lab.rows_digest()
    name = dumped()["file"]
    tear(lab.directory / f"{name}.json")
    verified = lab.run_json("verify", name, "--allow-unrecorded")
    assert verified["unchecked"] == ["row counts", "content checksums"]
    assert verified["record_problem"] == f"{name}.json is torn (not valid JSON)"
    lab.sql("DELETE FROM inventory_stockmovement")
    restored = lab.run_json("restore", name, "--allow-unrecorded")
    assert (restored["compared"], restored["unchecked"]) == (False, ["row counts"])
    assert lab.rows_digest() == at_dump


def test_a_complete_record_leaves_nothing_unchecked(lab, dumped):
    name = dumped()["file"]
    record, problem = load_record(lab.directory / name)
    assert problem is None and record["sequence"] == 1
    assert lab.run_json("verify", name)["unchecked"] == []
