"""Retention: by count (the newest N) and by age (one per day, one per week); the newest good dump stays."""

from __future__ import annotations

import datetime as dt

import pytest

from depotix_backup.names import Dump, dump_name
from depotix_backup.retention import select_retained

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 18, 12, 0, tzinfo=UTC)  # a Wednesday


def dumps_at(times, good=True, label="2.0"):
    return [Dump(dump_name("depotix", label, t), t, label, good) for t in times]


def daily_series(days, hour=2):
    """One dump a day at `hour`, from today back `days - 1` days."""
    return [dt.datetime(2026, 3, 18, hour, tzinfo=UTC) - dt.timedelta(days=n) for n in range(days)]


def kept_days(dumps, **policy):
    keep = select_retained(dumps, NOW, **policy)
    return sorted((d.time.date().isoformat() for d in dumps if d.name in keep), reverse=True)


def test_seven_daily_and_four_weekly_out_of_sixty_days():
    kept = kept_days(dumps_at(daily_series(60)), keep_last=0, keep_daily=7, keep_weekly=4)
    # Days 18..12 March; then the newest of each earlier ISO week in the last four:
    # this week (16-22 March) and last week (9-15) are covered by the dailies of 18 and 15 March,
    # the weeks of 2-8 and 23 Feb-1 March keep their Sundays.
    assert kept == ["2026-03-18", "2026-03-17", "2026-03-16", "2026-03-15", "2026-03-14", "2026-03-13",
                    "2026-03-12", "2026-03-08", "2026-03-01"]


def test_only_the_newest_dump_of_a_day_is_kept_for_that_day():
    times = [dt.datetime(2026, 3, 17, h, tzinfo=UTC) for h in (1, 9, 23)]
    keep = select_retained(dumps_at(times), NOW, keep_last=0, keep_daily=2, keep_weekly=0)
    assert sorted(keep) == [dump_name("depotix", "2.0", times[-1])]


def test_keep_last_keeps_the_newest_dumps_whatever_their_age():
    times = [NOW - dt.timedelta(days=400 + n) for n in range(5)]
    keep = select_retained(dumps_at(times), NOW, keep_last=3, keep_daily=7, keep_weekly=4)
    assert sorted(keep) == sorted(dump_name("depotix", "2.0", t) for t in times[:3])


def test_the_newest_good_dump_is_kept_even_when_the_policy_keeps_nothing():
    dumps = dumps_at([NOW - dt.timedelta(days=900), NOW - dt.timedelta(days=901)])
    keep = select_retained(dumps, NOW, keep_last=0, keep_daily=0, keep_weekly=0)
    assert keep == {dumps[0].name: ["newest"]}


def test_a_dump_without_a_checksum_is_never_kept_nor_counted():
    good = dumps_at([NOW - dt.timedelta(hours=5)])
    newer_but_bad = dumps_at([NOW - dt.timedelta(hours=1)], good=False)
    keep = select_retained(good + newer_but_bad, NOW, keep_last=1, keep_daily=1, keep_weekly=1)
    assert set(keep) == {good[0].name}


def test_the_dumps_of_a_restore_in_progress_are_kept():
    old = dumps_at([NOW - dt.timedelta(days=300)])
    new = dumps_at([NOW])
    keep = select_retained(old + new, NOW, keep_last=1, keep_daily=1, keep_weekly=1,
                                  protected=frozenset({old[0].name}))
    assert keep[old[0].name] == ["restore in progress"]


@pytest.mark.parametrize(("keep_daily", "keep_weekly", "expected"), [(1, 0, 1), (3, 0, 3), (0, 2, 2), (7, 4, 9)])
def test_counts_of_kept_dumps_follow_the_policy(keep_daily, keep_weekly, expected):
    dumps = dumps_at(daily_series(60))
    keep = select_retained(dumps, NOW, keep_last=0, keep_daily=keep_daily, keep_weekly=keep_weekly)
    assert len(keep) == expected
