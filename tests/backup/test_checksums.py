"""Verified by restoring: per-table row counts and content checksums recorded in the dump's snapshot, compared by the drill.

The drill and `verify --restore` restore a dump into a scratch database and compare
every table's row count and content checksum with its record; a difference fails,
naming the tables, even when every row count is the same.
"""

from __future__ import annotations

import hashlib
import json
import shutil

from depotix_backup.database import CHECKSUM_METHOD, parse_snapshot, snapshot_sql

TABLES = {"public.django_migrations", "public.inventory_inventoryitem", "public.inventory_stockmovement"}


def test_the_record_holds_a_checksum_of_every_tables_content_at_dump_time(lab, dumped):
    name = dumped()["file"]
    record = json.loads((lab.directory / f"{name}.json").read_text())
    assert set(record["checksums"]) == TABLES and record["checksum_method"] == CHECKSUM_METHOD
    assert parse_snapshot(lab.sql(snapshot_sql()))["checksums"] == record["checksums"]
    lab.sql("UPDATE inventory_inventoryitem SET quantity = quantity + 1 WHERE id = 1")
    again = json.loads((lab.directory / f"{dumped()['file']}.json").read_text())
    changed = {t for t in TABLES if again["checksums"][t] != record["checksums"][t]}
    assert changed == {"public.inventory_inventoryitem"} and again["tables"] == record["tables"]


def swap_data(lab, name, other):
    """Put the bytes of dump `other` under `name`, with a matching checksum: `name`'s record no longer fits."""
    shutil.copyfile(lab.directory / other, lab.directory / name)
    digest = hashlib.sha256((lab.directory / name).read_bytes()).hexdigest()
    (lab.directory / f"{name}.sha256").write_text(f"{digest}  {name}\n")


def test_the_drill_fails_naming_a_table_whose_content_differs_with_the_same_row_count(lab, dumped):
    name = dumped()["file"]
    lab.sql("UPDATE inventory_stockmovement SET note = 'changed' WHERE id = 7")
    swap_data(lab, name, dumped()["file"])
    done = lab.run("drill", name)
    assert done.returncode == 1
    assert "public.inventory_stockmovement (rows: 3000 recorded, 3000 restored; content differs)" in done.stderr
    assert "inventory_inventoryitem" not in done.stderr
    assert f"{lab.database}_drill" not in lab.databases()


def test_the_drill_reports_what_it_compared(lab, dumped):
    name = dumped()["file"]
    result = lab.run_json("drill", name)
    assert (result["ok"], result["tables"], result["rows"]) == (True, 3, 3024)
    assert (result["compared"], result["unchecked"]) == (["row counts", "content checksums"], [])
    assert result["outcome"].startswith(f"passed: {name} restored into a scratch database, 3 tables and 3024 rows")


def test_verify_restore_restores_into_a_scratch_database_and_compares(lab, dumped):
    name = dumped()["file"]
    lab.sql("DELETE FROM inventory_stockmovement")
    result = lab.run_json("verify", "--restore", name)
    assert (result["file"], result["entries"] > 5) == (name, True)
    assert result["restored"]["compared"] == ["row counts", "content checksums"]
    assert result["restored"]["rows"] == 3024 and f"{lab.database}_drill" not in lab.databases()
    assert lab.sql("SELECT count(*) FROM inventory_stockmovement") == "0"  # the live database is not involved


def test_verify_restore_fails_on_different_content(lab, dumped):
    name = dumped()["file"]
    lab.sql("UPDATE django_migrations SET name = name || '_x' WHERE id = 1")
    swap_data(lab, name, dumped()["file"])
    done = lab.run("verify", name, "--restore")
    assert done.returncode == 1 and "public.django_migrations" in done.stderr and "content differs" in done.stderr


def test_the_scheduled_drills_log_line_says_it_passed_and_what_it_compared(lab, dumped, tmp_path):
    name = dumped()["file"]
    log = tmp_path / "backup.log"
    assert lab.run("--log", str(log), "drill", "latest").returncode == 0
    line = log.read_text().splitlines()[-1]
    assert f" drill: ok passed: {name} restored into a scratch database, 3 tables and 3024 rows, every table's " \
           "row counts and content checksums equal to its record {" in line


EXOTIC = """
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE inventory_event (id serial PRIMARY KEY, mood mood NOT NULL, payload json NOT NULL,
                              at timestamptz NOT NULL, ratio float8 NOT NULL, kind regclass);
INSERT INTO inventory_event (mood, payload, at, ratio, kind)
  SELECT CASE WHEN n % 2 = 0 THEN 'calm'::mood ELSE 'busy' END, json_build_object('n', n),
         '2026-03-01 12:00+00'::timestamptz + n * interval '1 hour', n / 3.0, 'inventory_inventoryitem'
  FROM generate_series(1, 50) n;
"""


def test_tables_whose_values_hash_differently_after_a_restore_are_checksummed_by_their_text(lab, dumped):
    lab.sql("SET ROLE depotix;" + EXOTIC)
    result = dumped()
    assert result["checksums"]["public.inventory_event"].startswith("t")  # enum, json, regclass: by text
    assert result["checksums"]["public.inventory_stockmovement"].startswith("r")  # by value
    assert lab.run_json("drill", result["file"])["unchecked"] == []


def test_checksums_do_not_depend_on_the_databases_output_settings(lab, dumped):
    lab.sql("SET ROLE depotix;" + EXOTIC)
    lab.sql(f"ALTER DATABASE {lab.database} SET TimeZone = 'Pacific/Kiritimati'; "
            f"ALTER DATABASE {lab.database} SET DateStyle = 'SQL, DMY'; "
            f"ALTER DATABASE {lab.database} SET extra_float_digits = -3")
    assert lab.run_json("drill", dumped()["file"])["unchecked"] == []  # the scratch database has neither setting


def test_an_older_record_without_checksums_is_drilled_on_row_counts(lab, dumped):
    name = dumped()["file"]
    record = lab.directory / f"{name}.json"
    meta = json.loads(record.read_text())
    for key in ("checksums", "checksum_method", "sequence"):
        del meta[key]
    record.write_text(json.dumps(meta))
    result = lab.run_json("drill", name)
    assert (result["compared"], result["unchecked"]) == (["row counts"], ["content checksums"])
    assert "(content checksums not recorded, unchecked)" in result["outcome"]
