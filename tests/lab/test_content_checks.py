"""The scenarios' "nothing lost" checks (molecule/_shared/depotix_checks.py) on records made by hand.

Records have the form tasks/record_checksums.yml saves (files/table_checksums.sql): per
table its key, rows, md5 and a md5 per cell. Each test shows that a change of the kind
it names is seen, so that a scenario test built on these checks can fail.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "molecule" / "_shared"))
from depotix_checks import assert_dropped_data_accounted, assert_writer_lost_nothing, content_changes  # noqa: E402


def md5(value: object) -> str | None:
    return None if value is None else hashlib.md5(str(value).encode()).hexdigest()  # noqa: S324 - as the SQL does


def table(rows: dict[str, dict]) -> dict:
    return {"key": ["id"], "rows": len(rows), "md5": "-",
            "cells": {key: {column: md5(value) for column, value in row.items()} for key, row in rows.items()}}


@pytest.fixture
def before() -> dict:
    return {
        "inventory_inventoryitem": table({"1": {"id": 1, "sku": "BOLT-M8", "quantity": -7, "location": "aisle 1"},
                                          "2": {"id": 2, "sku": "NUT-M8", "quantity": 600, "location": None}}),
        "inventory_stockmovement": table({"1": {"id": 1, "note": "seed: opening stock", "key": "planted-1"},
                                          "10": {"id": 10, "note": "seed: demo order", "key": None}}),
    }


def test_identical_contents_have_no_changes(before):
    assert content_changes(before, copy.deepcopy(before)) == {}


def test_a_changed_value_a_lost_row_and_a_new_row_are_each_named(before):
    after = copy.deepcopy(before)
    after["inventory_inventoryitem"]["cells"]["1"]["quantity"] = md5(0)
    del after["inventory_stockmovement"]["cells"]["10"]
    after["inventory_stockmovement"]["cells"]["11"] = {"id": md5(11), "note": md5("x"), "key": None}
    assert content_changes(before, after) == {
        "inventory_inventoryitem": {"cells_changed": {"1": ["quantity"]}},
        "inventory_stockmovement": {"rows_removed": ["10"], "rows_added": ["11"]},
    }


def test_a_dropped_column_is_named_and_the_rest_of_each_row_still_compared(before):
    after = copy.deepcopy(before)
    for row in after["inventory_inventoryitem"]["cells"].values():
        del row["location"]
    assert content_changes(before, after) == {"inventory_inventoryitem": {"columns_dropped": ["location"]}}
    after["inventory_inventoryitem"]["cells"]["2"]["sku"] = md5("NUT-M10")
    assert content_changes(before, after)["inventory_inventoryitem"]["cells_changed"] == {"2": ["sku"]}


def test_dropped_data_must_be_announced_with_its_rows(before):
    after = copy.deepcopy(before)
    for row in after["inventory_inventoryitem"]["cells"].values():
        del row["location"]
    del after["inventory_stockmovement"]
    report = {"drops": [{"table": "inventory_inventoryitem", "column": "location", "rows_with_data": 1}]}
    log = "  drops table inventory_stockmovement (2 rows with data): inventory 0001_initial"
    assert assert_dropped_data_accounted(before, after, [report], [log]) == [
        "inventory_inventoryitem.location: 1 rows", "table inventory_stockmovement: 2 rows"]
    with pytest.raises(AssertionError, match="table inventory_stockmovement is gone with 2 rows"):
        assert_dropped_data_accounted(before, after, [report], [log.replace("table", "column x.y")])
    report["drops"][0]["rows_with_data"] = 0
    with pytest.raises(AssertionError, match="location is gone with 1 rows of data, but the runs stated \\[0\\]"):
        assert_dropped_data_accounted(before, after, [report], [log])


class FakeHost:
    """What the writer checks read: the JSON files writer_stop.yml leaves in /root."""

    def __init__(self, files: dict[str, dict]) -> None:
        self.files = files

    def file(self, path: str):
        return type("File", (), {"content_string": json.dumps(self.files[path])})()


def writer_files(acknowledged_at: dict[int, list[int]], lost: list[str]) -> FakeHost:
    acknowledged = sum(counts[0] for counts in acknowledged_at.values())
    ids = [f"writer:w:{n}" for n in range(1, acknowledged + 1)]
    summary = {"timeline": {str(s): c for s, c in acknowledged_at.items()}, "acknowledged_ids": ids}
    check = {"acknowledged": acknowledged, "lost": len(lost), "lost_ids": lost, "duplicated_ids": [],
             "found_in_database": acknowledged - len(lost)}
    return FakeHost({"/root/writer_w.json": summary, "/root/writer_w_check.json": check})


def test_the_writer_must_have_written_in_each_window_and_lost_nothing():
    host = writer_files({100: [20, 0], 101: [0, 20], 105: [18, 2]}, [])
    assert assert_writer_lost_nothing(host, "w", {"a": (100, 100), "b": (101, 102)}, must_succeed=("a",))["lost"] == 0
    with pytest.raises(AssertionError, match="no movement was acknowledged during b"):
        assert_writer_lost_nothing(host, "w", {"b": (101, 102)}, must_succeed=("b",))
    with pytest.raises(AssertionError, match="was not writing during c"):
        assert_writer_lost_nothing(host, "w", {"c": (102, 104)})
    with pytest.raises(AssertionError, match="missing from the database"):
        assert_writer_lost_nothing(writer_files({100: [20, 0]}, ["writer:w:3"]), "w", {})
