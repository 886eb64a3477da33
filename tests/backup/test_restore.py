"""Verify, restore and drill: damaged dumps refused before the database is touched; data equals the dump."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import SCRIPT


def flip_a_byte(path, offset=-100):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_verify_accepts_a_good_dump(lab, dumped):
    result = lab.run_json("verify", dumped()["file"])
    assert result["entries"] > 5 and result["label"] == "2.0"


def test_a_flipped_byte_is_refused_before_the_database_is_touched(lab, dumped):
    name = dumped()["file"]
    lab.sql("DELETE FROM inventory_stockmovement WHERE id % 2 = 0")
    before, databases = lab.rows_digest(), lab.databases()
    flip_a_byte(lab.directory / name)
    done = lab.run("restore", name)
    assert done.returncode == 1 and "does not match its checksum" in done.stderr
    assert (lab.rows_digest(), lab.databases()) == (before, databases)


def test_a_missing_checksum_is_refused_before_the_database_is_touched(lab, dumped):
    name = dumped()["file"]
    (lab.directory / f"{name}.sha256").unlink()
    before, databases = lab.rows_digest(), lab.databases()
    done = lab.run("restore", name)
    assert done.returncode == 1 and ".sha256 is missing" in done.stderr
    assert (lab.rows_digest(), lab.databases()) == (before, databases)


def test_restore_brings_back_every_row_of_the_dump(lab, dumped):
    at_dump = lab.rows_digest()
    name = dumped()["file"]
    lab.sql("DELETE FROM inventory_stockmovement WHERE id > 2500; "
            "INSERT INTO inventory_stockmovement (item_id, type, qty_base) VALUES (1, 'IN', 7);"
            "UPDATE inventory_inventoryitem SET quantity = 0")
    assert lab.rows_digest() != at_dump
    result = lab.run_json("restore", "latest")
    assert (result["file"], result["compared"], result["rows"]) == (name, True, 3024)
    assert lab.rows_digest() == at_dump
    assert lab.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()") == "depotix"
    assert f"{lab.database}_restoring" not in lab.databases()


def test_a_restore_killed_halfway_completes_when_run_again(lab, dumped):
    at_dump = lab.rows_digest()
    name = dumped()["file"]
    lab.sql("DELETE FROM inventory_stockmovement")
    run = subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(lab.config_file), "restore", name],
                           env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while f"{lab.database}_restoring" not in lab.databases() and time.monotonic() < deadline:
        time.sleep(0.005)
    run.kill()
    run.wait()
    assert lab.sql("SELECT count(*) FROM inventory_stockmovement") == "0"  # the live database is untouched
    lab.run_json("restore", name)
    assert lab.rows_digest() == at_dump


def test_restore_refuses_a_dump_whose_restored_counts_differ_from_its_record(lab, dumped):
    name = dumped()["file"]
    record = lab.directory / f"{name}.json"
    meta = json.loads(record.read_text())
    meta["tables"]["public.inventory_stockmovement"] = 2999
    record.write_text(json.dumps(meta))
    lab.sql("DELETE FROM inventory_stockmovement WHERE id = 1")
    before = lab.rows_digest()
    done = lab.run("restore", name)
    assert done.returncode == 1 and "differ from those recorded at dump time" in done.stderr
    assert lab.rows_digest() == before


def test_the_drill_restores_into_a_scratch_database_compares_and_drops_it(lab, dumped):
    name = dumped()["file"]
    lab.sql("DELETE FROM inventory_stockmovement")
    result = lab.run_json("drill", "latest")
    assert (result["ok"], result["file"], result["rows"], result["tables"]) == (True, name, 3024, 3)
    assert f"{lab.database}_drill" not in lab.databases()
    assert lab.sql("SELECT count(*) FROM inventory_stockmovement") == "0"  # the live database is not involved


@pytest.mark.parametrize("table", ["public.inventory_stockmovement", "public.django_migrations"])
def test_the_drill_fails_when_a_tables_count_differs_and_still_drops_the_scratch(lab, dumped, table):
    name = dumped()["file"]
    record = lab.directory / f"{name}.json"
    meta = json.loads(record.read_text())
    meta["tables"][table] += 1
    record.write_text(json.dumps(meta))
    done = lab.run("drill", name)
    assert done.returncode == 1 and table in done.stderr
    assert f"{lab.database}_drill" not in lab.databases()


def test_the_swap_keeps_the_replaced_database_until_it_is_discarded(lab, dumped):
    at_dump = lab.rows_digest()
    name = dumped()["file"]
    lab.sql("DELETE FROM inventory_stockmovement WHERE id <= 10")
    changed = lab.rows_digest()
    result = lab.run_json("restore", name, "--keep-previous")
    previous = f"{lab.database}_replaced"
    assert result["previous_database"] == previous
    assert (lab.rows_digest(), lab.rows_digest(previous)) == (at_dump, changed)
    assert lab.run_json("discard-previous") == {"changed": True, "dropped": previous}
    assert previous not in lab.databases()


def test_a_restore_without_keep_previous_drops_the_replaced_database(lab, dumped):
    lab.run_json("restore", dumped()["file"])
    assert f"{lab.database}_replaced" not in lab.databases()


def test_the_swap_ends_sessions_on_the_live_database(lab, dumped):
    name = dumped()["file"]
    session = subprocess.Popen(["psql", "-X", "-h", str(lab.socket_dir), "-U", "postgres", "-d", lab.database,
                                "-c", "SELECT pg_sleep(60)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    try:
        lab.run_json("restore", name)
    finally:
        session.kill()
    assert session.wait() != 0
