"""Taking a dump: verified before it gets its name; a failed run keeps no partial file and touches no other."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_dump_has_its_checksum_and_record_beside_it_all_private(lab, dumped):
    result = dumped()
    path = Path(result["path"])
    assert lab.files() == {path.name, f"{path.name}.sha256", f"{path.name}.json"}
    assert (lab.directory / f"{path.name}.sha256").read_text() == f"{digest(path)}  {path.name}\n"
    for name in lab.files():
        assert stat.S_IMODE((lab.directory / name).stat().st_mode) == 0o600


def test_the_record_holds_row_counts_and_migrations_of_the_dumps_snapshot(lab, dumped):
    record = json.loads((lab.directory / f"{dumped()['file']}.json").read_text())
    assert record["tables"] == {"public.django_migrations": 4, "public.inventory_inventoryitem": 20,
                                "public.inventory_stockmovement": 3000}
    assert record["migrations"]["inventory"] == ["0001_initial", "0002_stockmovement_note",
                                                 "0007_populate_customer_numbers"]
    assert (record["label"], record["release"], record["rows"]) == ("2.0", "2.0", 3024)


def test_the_database_down_fails_the_dump_clearly_and_touches_nothing(lab, dumped):
    earlier = dumped()
    before = {name: digest(lab.directory / name) for name in lab.files()}
    done = lab.run("dump", env={"FAKE_DOCKER_DB_DOWN": "1"})
    assert done.returncode == 1
    assert "does not answer" in done.stderr and "earlier dumps are untouched" in done.stderr
    assert {name: digest(lab.directory / name) for name in lab.files()} == before
    assert earlier["file"] in before


def test_the_database_dying_during_the_dump_leaves_no_partial_file(lab, dumped):
    dumped()
    before = {name: digest(lab.directory / name) for name in lab.files()}
    done = lab.run("dump", env={"FAKE_DOCKER_DUMP_DIES_AFTER": "2000"})
    assert done.returncode == 1
    assert "pg_dump failed" in done.stderr and "server closed the connection" in done.stderr
    assert "no partial dump was kept" in done.stderr
    assert {name: digest(lab.directory / name) for name in lab.files()} == before


def test_a_missing_backup_directory_is_reported_not_created(lab):
    lab.write_config(directory=str(lab.directory / "gone"))
    done = lab.run("dump")
    assert done.returncode == 1 and "backup directory" in done.stderr and "is missing" in done.stderr


def test_log_option_writes_outcomes_to_the_file_not_the_terminal(lab, tmp_path):
    log = tmp_path / "backup.log"
    ok = lab.run("--log", str(log), "dump")
    failed = lab.run("--log", str(log), "dump", env={"FAKE_DOCKER_DB_DOWN": "1"})
    assert (ok.returncode, failed.returncode, failed.stderr) == (0, 1, "")
    lines = log.read_text().splitlines()
    assert " dump: ok {" in lines[0] and " dump: FAILED: database " in lines[1]
