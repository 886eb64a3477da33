"""Order without trusting clocks: dumps are ordered by the sequence number in their record, not their time.

The clock is faked (the package runs in this process): a dump stamped in the future,
two dumps with the same time, a clock set back between two dumps. Dumps an older script
took (records without a sequence) come first, by time.
"""

from __future__ import annotations

import datetime as dt
import json

from depotix_backup.names import Dump, list_dumps, order_key, resolve_dump
from depotix_backup.retention import select_retained

UTC = dt.timezone.utc


def sequences(lab) -> dict[str, int]:
    return {d["file"]: d["sequence"] for d in lab.run_json("list")["dumps"]}


def test_a_dump_stamped_in_the_future_is_reported_and_never_preferred(lab, inproc):
    now = dt.datetime.now(UTC)
    ahead = inproc.dump(at=now + dt.timedelta(days=3))["file"]  # the clock was three days ahead
    fresh = inproc.dump()["file"]  # then set right
    listing = lab.run_json("list")
    assert [d["file"] for d in listing["dumps"]] == [fresh, ahead]
    assert listing["future"] == [ahead] and [d["future"] for d in listing["dumps"]] == [False, True]
    assert lab.run_json("verify", "latest")["file"] == fresh
    lab.write_config(keep_last=1, keep_daily=7, keep_weekly=4)
    pruned = lab.run_json("prune")
    assert set(pruned["kept"]) == {fresh} and pruned["deleted"][0] == ahead
    assert pruned["future"] == [ahead]


def test_dumps_with_the_same_time_are_ordered_by_sequence_not_name(lab, inproc):
    stamp = dt.datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    first = inproc.dump("zzz", at=stamp)
    second = inproc.dump("aaa", at=stamp)
    assert first["created"] == second["created"] and (first["sequence"], second["sequence"]) == (1, 2)
    assert resolve_dump(lab.config, "latest") == second["file"]
    lab.write_config(keep_last=1, keep_daily=0, keep_weekly=0)
    assert set(lab.run_json("prune", "--dry-run")["kept"]) == {second["file"]}


def test_a_clock_set_back_between_two_runs_does_not_prune_the_new_dump(lab, inproc):
    lab.write_config(keep_last=1, keep_daily=1, keep_weekly=0)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    before = inproc.scheduled(at=now)["dump"]["file"]
    result = inproc.scheduled(at=now - dt.timedelta(hours=1))  # NTP set the clock back an hour
    made = result["dump"]["file"]
    assert made < before  # its name sorts first ...
    assert set(result["prune"]["kept"]) == {made} and before in result["prune"]["deleted"]  # ... yet it is newest
    assert resolve_dump(lab.config, "latest") == made and sequences(lab) == {made: 2}


def test_the_sequence_is_one_more_than_the_highest_recorded(lab, dumped):
    first, second = dumped()["file"], dumped()["file"]
    for suffix in ("", ".sha256", ".json"):
        (lab.directory / f"{first}{suffix}").unlink()
    assert dumped()["sequence"] == 3 and sequences(lab)[second] == 2


def place(lab, name, sequence=None):
    """Write a complete dump (without data) named `name`, its record with `sequence` (None: an older script's)."""
    (lab.directory / name).write_bytes(b"PGDMP")
    (lab.directory / f"{name}.sha256").write_text(f"0  {name}\n")
    record = {"file": name, "sha256": "0", "created": "x", "tables": {}, "rows": 0, "migrations": {}}
    if sequence is not None:
        record["sequence"] = sequence
    (lab.directory / f"{name}.json").write_text(json.dumps(record))


def test_dumps_without_a_sequence_come_before_sequenced_ones_by_time(lab):
    place(lab, "depotix_20260105T000000Z_2.0.dump")  # older script, newest time
    place(lab, "depotix_20260101T000000Z_2.0.dump")
    place(lab, "depotix_20260102T000000Z_2.0.dump", sequence=2)
    place(lab, "depotix_20260103T000000Z_2.0.dump", sequence=1)
    assert [d.name for d in list_dumps(lab.config)] == [
        "depotix_20260101T000000Z_2.0.dump", "depotix_20260105T000000Z_2.0.dump",
        "depotix_20260103T000000Z_2.0.dump", "depotix_20260102T000000Z_2.0.dump"]


def test_retention_fills_each_days_slot_with_its_highest_sequence():
    day = dt.datetime(2026, 3, 17, tzinfo=UTC)
    late = Dump("depotix_20260317T230000Z_2.0.dump", day.replace(hour=23), "2.0", True, sequence=1)
    early = Dump("depotix_20260317T010000Z_2.0.dump", day.replace(hour=1), "2.0", True, sequence=2)
    keep = select_retained([late, early], dt.datetime(2026, 3, 18, 12, tzinfo=UTC),
                           keep_last=0, keep_daily=2, keep_weekly=0)
    assert keep == {early.name: ["newest", "daily"]}
    assert sorted([late, early], key=order_key) == [late, early]
