"""Status for monitoring: every scheduled run and drill rewrites a node_exporter textfile, atomically.

A success sets its time, size and duration; a failure keeps the last success's values
and sets *_last_run_success to 0.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time
from pathlib import Path

import pytest

from depotix_backup.files import LOCK_FILE
from depotix_backup.status import read_status, write_status

PREFIX = "depotix_backup_"


@pytest.fixture
def status_file(lab, tmp_path):
    path = tmp_path / "textfile_collector" / "depotix_backup.prom"
    path.parent.mkdir()
    lab.write_config(status_file=str(path))
    return path


def metrics(path) -> dict[str, float]:
    """Return the samples of a textfile, checking that each has its HELP and TYPE lines."""
    lines = path.read_text().splitlines()
    samples = {line.split()[0]: float(line.split()[1]) for line in lines if not line.startswith("#")}
    for name in samples:
        assert f"# TYPE {name} gauge" in lines and any(line.startswith(f"# HELP {name} ") for line in lines)
    return samples


def test_a_scheduled_run_writes_its_success_time_size_and_duration(lab, status_file):
    started = time.time()
    result = lab.run_json("scheduled")
    found = metrics(status_file)
    assert started - 1 <= found[f"{PREFIX}last_success_timestamp_seconds"] <= time.time() + 1
    assert found[f"{PREFIX}last_size_bytes"] == result["dump"]["size"]
    assert 0 < found[f"{PREFIX}last_duration_seconds"] < time.time() - started + 1
    assert found[f"{PREFIX}last_run_success"] == 1
    assert stat.S_IMODE(status_file.stat().st_mode) == 0o644  # node_exporter reads it as another user
    assert [p.name for p in status_file.parent.iterdir() if not p.name.endswith(".lock")] == [status_file.name]


def test_a_failed_run_keeps_the_last_success_and_says_it_failed(lab, status_file):
    lab.run_json("scheduled")
    succeeded = metrics(status_file)
    done = lab.run("scheduled", env={"FAKE_DOCKER_DB_DOWN": "1"})
    assert done.returncode == 1
    failed = metrics(status_file)
    assert failed == {**succeeded, f"{PREFIX}last_run_success": 0}


def test_a_drill_writes_its_own_metrics_beside_the_backups(lab, status_file):
    lab.run_json("scheduled")
    backup = metrics(status_file)
    before = time.time()
    lab.run_json("drill", "latest")
    drilled = metrics(status_file)
    assert drilled[f"{PREFIX}drill_last_success_timestamp_seconds"] >= before - 1
    assert drilled[f"{PREFIX}drill_last_run_success"] == 1
    assert {k: v for k, v in drilled.items() if "drill" not in k} == backup
    record = lab.directory / f"{lab.run_json('list')['dumps'][0]['file']}.json"
    meta = json.loads(record.read_text())
    meta["tables"]["public.inventory_stockmovement"] += 1
    record.write_text(json.dumps(meta))
    assert lab.run("drill", "latest").returncode == 1
    assert metrics(status_file) == {**drilled, f"{PREFIX}drill_last_run_success": 0}


def test_a_run_that_cannot_take_the_directorys_lock_reports_its_failure(lab, status_file):
    lab.run_json("scheduled")
    succeeded = metrics(status_file)
    lab.write_config(lock_timeout=0)
    with (lab.directory / LOCK_FILE).open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another run holds the directory
        done = lab.run("scheduled")
    assert done.returncode == 1 and "another depotix-backup run holds" in done.stderr
    assert metrics(status_file) == {**succeeded, f"{PREFIX}last_run_success": 0}


def test_a_first_run_that_fails_writes_only_its_failure(lab, status_file):
    assert lab.run("--log", str(status_file.parent.parent / "log"), "scheduled",
                   env={"FAKE_DOCKER_DB_DOWN": "1"}).returncode == 1
    assert metrics(status_file) == {f"{PREFIX}last_run_success": 0}


def test_the_status_file_is_replaced_whole_never_rewritten_in_place(tmp_path, monkeypatch):
    path = tmp_path / "depotix_backup.prom"
    write_status(path, {"last_run_success": 1, "last_success_timestamp_seconds": 1700000000})
    old_inode, old_text = path.stat().st_ino, path.read_text()
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append((os.path.basename(src), Path(src).read_text(), path.read_text()))  # what a scrape could read
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    write_status(path, {"last_run_success": 0, "last_success_timestamp_seconds": 1700000000})
    [(temporary, new_text, during)] = seen
    assert not temporary.endswith(".prom") and during == old_text  # node_exporter reads *.prom only
    assert path.read_text() == new_text and f"{PREFIX}last_run_success 0\n" in new_text
    assert path.stat().st_ino != old_inode


def test_a_status_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "depotix_backup.prom"
    write_status(path, {"last_run_success": 1})
    before = path.read_text()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_status(path, {"last_run_success": 0})
    assert path.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert read_status(path) == {"last_run_success": 1}
