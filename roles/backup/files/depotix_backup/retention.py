"""Retention: which dumps the policy keeps (count, days, weeks, a restore in progress), and pruning the rest.

The policy's numbers come from the settings (the role's backup_keep_* defaults), and the
marker of a restore in progress is the settings' restore_marker (restore.yml writes it).
"Newest" is by sequence number (names.py), never by the clock; a dump stamped in the
future is reported and gets no day's or week's slot for that future time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from depotix_backup import clock
from depotix_backup.errors import BackupError, Corrupt
from depotix_backup.files import remove_quietly
from depotix_backup.names import Dump, in_future, list_dumps, order_key, parse_dump_name, sidecars
from depotix_backup.verify import cmd_verify

POLICY_KEYS = ("keep_last", "keep_daily", "keep_weekly")


def retention_policy(config: dict[str, Any]) -> dict[str, int]:
    """Return the retention settings: how many newest dumps, days and weeks to keep."""
    return {key: int(config[key]) for key in POLICY_KEYS}


def week_of(day: dt.date) -> dt.date:
    """Return the Monday that starts a day's ISO week."""
    return day - dt.timedelta(days=day.weekday())


def newest_per_period(good: list[Dump], periods: set[dt.date], period_of: Callable[[dt.date], dt.date]) -> list[Dump]:
    """Return the newest dump of each of `periods` (`good` is newest first, `period_of` maps a day to its period)."""
    seen: set[dt.date] = set()
    found = []
    for dump in good:  # newest first: the first dump met in a period is its newest
        period = period_of(dump.time.date())
        if period in periods and period not in seen:
            seen.add(period)
            found.append(dump)
    return found


def select_retained(dumps: list[Dump], now: dt.datetime, keep_last: int, keep_daily: int, keep_weekly: int,
                    protected: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Return {dump name: reasons} of the dumps to keep; every other dump is to be deleted.

    Only good dumps (a .sha256 and a complete record) count, newest by sequence (an
    older script's dumps, without one, by time before them). Kept are: the newest good dump, always; the
    `keep_last` newest good dumps; the newest good dump of each of the last `keep_daily`
    UTC days, today included; the newest good dump of each of the last `keep_weekly`
    ISO weeks, this week included; and the `protected` ones (a restore in progress).
    """
    good = sorted((d for d in dumps if d.good), key=order_key, reverse=True)
    keep: dict[str, list[str]] = {}

    def add(dump: Dump, reason: str) -> None:
        keep.setdefault(dump.name, []).append(reason)

    if good:
        add(good[0], "newest")
    for dump in good[:max(0, keep_last)]:
        add(dump, "last")
    today = now.astimezone(dt.timezone.utc).date()
    days = {today - dt.timedelta(days=n) for n in range(max(0, keep_daily))}
    weeks = {week_of(today) - dt.timedelta(weeks=n) for n in range(max(0, keep_weekly))}
    for dump in newest_per_period(good, days, lambda day: day):
        add(dump, "daily")
    for dump in newest_per_period(good, weeks, week_of):
        add(dump, "weekly")
    for dump in dumps:
        if dump.name in protected:
            add(dump, "restore in progress")
    return keep


def restore_in_progress(config: dict[str, Any]) -> frozenset[str]:
    """Return the dumps an unfinished restore.yml run relies on: its dump and the safety dump of each of its runs."""
    try:
        marker = json.loads(Path(config["restore_marker"]).read_text())
    except (OSError, ValueError):
        return frozenset()
    if not isinstance(marker, dict):
        return frozenset()
    runs = marker.get("runs") if isinstance(marker.get("runs"), list) else []
    names = [marker.get("dump"), marker.get("safety_backup")]
    names += [run.get("safety_backup") for run in runs if isinstance(run, dict)]
    return frozenset(str(name) for name in names if name)


def orphans(config: dict[str, Any], dumps: list[Dump]) -> list[Path]:
    """Return files left by runs that died: partial dumps and sidecars, and sidecars whose dump is gone."""
    backup_dir = Path(config["directory"])
    names = {d.name for d in dumps}
    found = []
    for path in backup_dir.iterdir():
        if path.name.startswith(f".{config['prefix']}_") and path.name.endswith(".partial"):
            found.append(path)
        elif path.name.endswith((".dump.sha256", ".dump.json")) and not path.name.startswith("."):
            owner = path.name.rsplit(".", 1)[0]
            if parse_dump_name(config["prefix"], owner) and owner not in names:
                found.append(path)
    return sorted(found)


def remove_dump(path: Path) -> list[str]:
    """Remove a dump and its sidecars; return the names removed."""
    return remove_quietly(path, *sidecars(path))


def check_newest(config: dict[str, Any], newest: Dump) -> None:
    """Verify the newest good dump before anything is deleted.

    A damaged one (checksum, or an archive pg_restore rejects) is removed and the run
    fails; when the check cannot run (Docker, the container, the disk), nothing is
    deleted and the run fails, saying why.
    """
    try:
        cmd_verify(config, newest.name)
    except Corrupt as exc:
        removed = remove_dump(Path(config["directory"]) / newest.name)
        raise BackupError(f"the newest dump failed verification ({exc}); removed {', '.join(removed)} and "
                          "deleted nothing else: take a new dump (depotix-backup dump).") from exc
    except BackupError as exc:
        raise BackupError(f"the newest dump {newest.name} could not be verified ({exc}); it is kept and nothing "
                          "was deleted: this says nothing against the dump. Start the database container or "
                          "Docker (site.yml) and rerun.") from exc


def cmd_prune(config: dict[str, Any], dry_run: bool, verified: str | None = None,
              now: dt.datetime | None = None) -> dict[str, Any]:
    """Apply the retention policy; never delete the newest good dump, and check it before deleting anything."""
    backup_dir = Path(config["directory"])
    now = now or clock.utc_now()
    dumps = list_dumps(config)
    good = [d for d in dumps if d.good]
    if good and good[-1].name != verified and not dry_run:
        check_newest(config, good[-1])
    policy = retention_policy(config)
    keep = select_retained(dumps, now, protected=restore_in_progress(config), **policy)
    doomed = [d.name for d in dumps if d.name not in keep]
    leftovers = [p.name for p in orphans(config, dumps)]
    deleted: list[str] = []
    if not dry_run:
        for name in doomed:
            deleted += remove_dump(backup_dir / name)
        deleted += remove_quietly(*(backup_dir / name for name in leftovers))
    return {"changed": bool(doomed or leftovers) and not dry_run, "dry_run": dry_run,
            "now": now.isoformat(timespec="seconds"), "policy": policy, "kept": keep,
            "delete": doomed, "orphans": leftovers, "deleted": deleted, "future": in_future(dumps, now)}
