"""The wall clock, in one place: dump names and `created` come from it, and retention's days and weeks.

The order of dumps does not: it is the sequence number in each dump's record (names.py),
so a clock set wrong never makes an old dump look newest. Tests replace utc_now.
"""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """Return the current time, in UTC."""
    return dt.datetime.now(dt.timezone.utc)
