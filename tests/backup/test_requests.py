"""What the script accepts as a dump name: files of the backup directory only; `latest`."""

from __future__ import annotations

import json
import os

import pytest

from conftest import complete_record
from depotix_backup.errors import BackupError
from depotix_backup.names import dump_path, resolve_dump


@pytest.mark.parametrize("name", [
    "../etc/passwd", "../backups/x.dump", "/etc/passwd", "/tmp/x.dump", "sub/x.dump",
    ".depotix_20260101T000000Z_2.0.dump.partial", "depotix_20260101T000000Z_2.0.dump.sha256", "",
])
def test_names_that_leave_the_backup_directory_or_are_no_dump_are_refused(lab, name):
    with pytest.raises(BackupError, match="is not a dump of the backup directory"):
        dump_path(lab.config, name)


def test_a_symlink_that_points_out_of_the_backup_directory_is_refused(lab, tmp_path):
    outside = tmp_path / "elsewhere.dump"
    outside.write_bytes(b"x")
    os.symlink(outside, lab.directory / "depotix_20260101T000000Z_2.0.dump")
    with pytest.raises(BackupError, match="is not a dump of the backup directory"):
        dump_path(lab.config, "depotix_20260101T000000Z_2.0.dump")


def test_an_absolute_path_inside_the_backup_directory_is_accepted(lab):
    path = lab.directory / "depotix_20260101T000000Z_2.0.dump"
    assert dump_path(lab.config, str(path)) == path.resolve()


def touch_dump(lab, name, complete=True):
    (lab.directory / name).write_bytes(b"PGDMP")
    (lab.directory / f"{name}.json").write_text(json.dumps(complete_record(name)))
    if complete:
        (lab.directory / f"{name}.sha256").write_text(f"0  {name}\n")


def test_latest_is_the_newest_complete_dump_that_is_not_a_restore_safety_dump(lab):
    touch_dump(lab, "depotix_20260101T000000Z_2.0.dump")
    touch_dump(lab, "depotix_20260102T000000Z_2.0.dump")
    touch_dump(lab, "depotix_20260103T000000Z_2.0_before_restore.dump")
    touch_dump(lab, "depotix_20260104T000000Z_2.0.dump", complete=False)
    assert resolve_dump(lab.config, "latest") == "depotix_20260102T000000Z_2.0.dump"


def test_latest_in_an_empty_directory_says_there_is_no_dump(lab):
    with pytest.raises(BackupError, match="there is no complete dump"):
        resolve_dump(lab.config, "latest")


@pytest.mark.parametrize("args", [("verify", "../x.dump"), ("restore", "/etc/passwd"), ("drill", "../../x.dump")])
def test_the_command_line_refuses_paths_outside_in_one_line(lab, args):
    done = lab.run(*args)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "is not a dump of the backup directory" in done.stderr


def test_an_unknown_name_is_refused_naming_the_dumps_there_are(lab, dumped):
    taken = dumped()["file"]
    done = lab.run("verify", "depotix_20000101T000000Z_9.9.dump")
    assert done.returncode == 1
    assert "does not exist" in done.stderr and taken in done.stderr
