"""Dump file names: UTC time and release, and the release read from the ledger."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "module_utils"))
from release_ledger import ledger_summary  # noqa: E402
from depotix_backup.ledger import ledger_release  # noqa: E402
from depotix_backup.names import dump_name, parse_dump_name  # noqa: E402

UTC = dt.timezone.utc


def test_dump_name_has_the_utc_time_and_the_release():
    now = dt.datetime(2026, 1, 1, 3, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert dump_name("depotix", "2.0", now) == "depotix_20260101T020000Z_2.0.dump"


def test_dump_name_without_a_label_has_only_the_time():
    assert dump_name("depotix", "", dt.datetime(2026, 1, 1, tzinfo=UTC)) == "depotix_20260101T000000Z.dump"


def test_dump_name_drops_characters_that_do_not_belong_in_a_file_name():
    name = dump_name("depotix", "../2.0 rc/1;rm", dt.datetime(2026, 1, 1, tzinfo=UTC))
    assert name == "depotix_20260101T000000Z_..2.0rc1rm.dump"
    assert "/" not in name


@pytest.mark.parametrize("label", ["2.0", "1.0_before_restore", "", "2.0-broken_before_rollback2"])
def test_parse_dump_name_reads_back_time_and_label(label):
    when = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert parse_dump_name("depotix", dump_name("depotix", label, when)) == (when, label)


@pytest.mark.parametrize("name", [
    "depotix_20260101T020000Z_2.0.dump.sha256", ".depotix_20260101T020000Z_2.0.dump.partial",
    "other_20260101T020000Z_2.0.dump", "depotix_yesterday_2.0.dump", "depotix_20261301T020000Z.dump",
])
def test_parse_dump_name_ignores_other_files(name):
    assert parse_dump_name("depotix", name) is None


OK_DEPLOY = {"action": "deploy", "outcome": "ok"}
LEDGERS = [
    [],
    [{"release": "1.0", "action": "site", "outcome": "ok"}],
    [{"release": "1.0", "action": "site", "outcome": "ok"}, {"release": "2.0", "action": "deploy", "outcome": "ok"}],
    [{"release": "1.0", "action": "site", "outcome": "ok"},
     {"release": "2.0", "action": "deploy", "outcome": "failed"}],
    [{"release": "1.0", "action": "site", "outcome": "ok"}, {"release": "2.0", "action": "deploy", "outcome": "ok"},
     {"release": "2.1", **OK_DEPLOY}, {"release": "2.0", "action": "rollback", "outcome": "ok"}],
    [{"release": "1.0", "action": "site", "outcome": "ok"}, {"release": "2.0", "action": "deploy", "outcome": "ok"},
     {"release": "1.0", "action": "rollback", "outcome": "ok"}, {"release": "2.1", **OK_DEPLOY}],
]


@pytest.mark.parametrize("entries", LEDGERS)
def test_the_script_reads_the_current_release_as_the_ledger_module_does(entries, tmp_path):
    ledger = tmp_path / "releases.json"
    ledger.write_text(json.dumps({"entries": entries}))
    current = ledger_summary(entries)["current"]
    assert ledger_release({"ledger": str(ledger)}) == (current["release"] if current else None)


def test_a_scheduled_dump_is_labelled_with_the_ledgers_current_release(lab, dumped):
    assert Path(dumped()["path"]).name.endswith("_2.0.dump")


def test_a_dump_without_a_readable_ledger_has_no_label(lab, dumped):
    lab.write_config(ledger=str(lab.directory / "missing.json"))
    assert Path(dumped()["path"]).name.endswith("Z.dump")


def test_two_dumps_in_the_same_second_get_different_names(lab, dumped):
    assert dumped("--label", "x")["file"] != dumped("--label", "x")["file"]


def test_dumps_with_different_labels_in_the_same_second_are_ordered_by_their_sequence(lab, dumped):
    first = dumped("--label", "zzz")
    second = dumped("--label", "aaa")
    assert (first["sequence"], second["sequence"]) == (1, 2)
    assert [d["file"] for d in lab.run_json("list")["dumps"]] == [second["file"], first["file"]]
