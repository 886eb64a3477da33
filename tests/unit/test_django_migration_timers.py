"""The probe's timers report what is true: a finished migrate stands, a cut-off restore is no rollback.

The timers are made to strike at chosen moments by patching probe functions
(conftest.run_patched_probe), not by racing small timeouts against Django's
start on a busy machine: the request's own timeout is long, and the patch
starts a short timer exactly where the test needs it. The pure parts run in-process.
"""

from __future__ import annotations

import io
import signal
import time
from pathlib import Path

import pytest
from ansible.module_utils import django_migration_probe as probe
from conftest import BILLING, applied_rows, run_patched_probe

LONG = {"timeout": 60, "grace": 5}  # the request's own timers stay out of the way

# Capture the hard timer's arguments instead of starting it, so a patch can start a short one.
CAPTURE_HARD_TIMER = """
import time

_real_start_hard_timer = start_hard_timer
_hard_timer = {}


def start_hard_timer(seconds, *args, **kwargs):
    _hard_timer.update(args=args, kwargs=kwargs)


def strike_hard_timer_in(seconds):
    _real_start_hard_timer(seconds, *_hard_timer["args"], **_hard_timer["kwargs"])
"""

# Django's post_migrate handlers run after the last migration committed, still inside migrate.
AFTER_LAST_MIGRATION = """
_real_django_setup = django_setup


def django_setup():
    _real_django_setup()
    from django.db.models.signals import post_migrate

    def when_every_migration_is_applied(**kwargs):
        %s
        time.sleep(30)

    post_migrate.connect(when_every_migration_is_applied, weak=False, dispatch_uid="test-timer")
"""


@pytest.mark.db_state("shop_0003")
def test_soft_timer_striking_after_the_last_migration_committed_leaves_migrate_succeeded(database: Path) -> None:
    patch = CAPTURE_HARD_TIMER + AFTER_LAST_MIGRATION % "start_soft_timer(0.3)"

    document = run_patched_probe(database, dict(LONG, action="migrate", app="billing"), patch)

    assert document["ok"], document
    assert document["after"]["billing"]["applied"] == BILLING
    assert "struck after every migration was applied" in document["migrate_output"][-1]
    assert applied_rows(database, "billing") == ["billing.%s" % name for name in BILLING]


@pytest.mark.db_state("shop_0003")
def test_hard_timer_striking_after_the_last_migration_committed_reports_migrate_succeeded(database: Path) -> None:
    # Stuck where no signal reaches (the soft timer is off); the hard timer kills the process.
    patch = CAPTURE_HARD_TIMER + AFTER_LAST_MIGRATION % "stop_soft_timer(); strike_hard_timer_in(0.3)"

    document = run_patched_probe(database, dict(LONG, action="migrate", app="billing"), patch)

    assert document["ok"], document
    assert document["after"]["billing"]["applied"] == BILLING
    assert "was killed after every migration was applied" in document["migrate_output"][-1]
    assert applied_rows(database, "billing") == ["billing.%s" % name for name in BILLING]


SLOW_RESTORE = """
_real_restore_state = restore_state


def restore_state(*args, **kwargs):
    %s
"""


@pytest.mark.db_state("shop_0003")
def test_hard_timer_cutting_the_restore_short_reports_state_unknown(database: Path) -> None:
    patch = CAPTURE_HARD_TIMER + SLOW_RESTORE % (
        "strike_hard_timer_in(0.3); time.sleep(30); return _real_restore_state(*args, **kwargs)"
    )

    document = run_patched_probe(
        database, dict(LONG, action="migrate", app="billing"), patch, FIXTURE_FAIL_MIGRATION="billing.0002"
    )

    assert document["kind"] == "state_unknown"
    assert document["restored"] is False
    assert "Restoring the previous migration state did not complete" in document["message"]
    assert "state=query" in document["message"]
    assert "rolled back" not in document["message"]
    assert document["after"]["billing"]["applied"] == ["0001_initial"]  # applied before billing.0002 failed
    assert applied_rows(database, "billing") == ["billing.0001_initial"]


@pytest.mark.db_state("shop_0003")
def test_hard_timer_after_the_restore_finished_reports_it_restored(database: Path) -> None:
    patch = CAPTURE_HARD_TIMER + SLOW_RESTORE % (
        "outcome = _real_restore_state(*args, **kwargs); strike_hard_timer_in(0.3); time.sleep(30); return outcome"
    )
    before = applied_rows(database)

    document = run_patched_probe(
        database, dict(LONG, action="migrate", app="billing"), patch, FIXTURE_FAIL_MIGRATION="billing.0002"
    )

    assert document["kind"] == "migrate_failed"
    assert document["restored"] is True
    assert "fixture failure requested in billing.0002" in document["message"]
    assert "The state before was restored, then it was still busy" in document["message"]
    assert applied_rows(database) == before


# --- in-process: the pieces without Django -----------------------------------------------------------


def state(**applied):
    return {app: {"applied": names, "unapplied": [], "leaf": [], "ghosts": []} for app, names in applied.items()}


def test_a_stopped_soft_timer_whose_signal_is_already_on_its_way_raises_nothing() -> None:
    previous = signal.getsignal(signal.SIGALRM)
    try:
        probe.start_soft_timer(30)
        probe.stop_soft_timer()

        assert probe._raise_timeout(signal.SIGALRM, None) is None
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_hard_timeout_during_restore_tells_restored_from_unknown() -> None:
    progress = probe.Progress()
    progress.migrating({"ok": True}, state(shop=["0001_initial"]), state(shop=["0001_initial", "0002_item_sku"]))
    progress.restoring("migrate_failed", "Migrating shop to 0002_item_sku failed: RuntimeError: x.")

    unknown = probe.hard_timeout_document(
        progress, 9, io.StringIO(), lambda: state(shop=["0001_initial", "0002_item_sku"])
    )
    unread = probe.hard_timeout_document(progress, 9, io.StringIO(), lambda: None)
    restored = probe.hard_timeout_document(progress, 9, io.StringIO(), lambda: state(shop=["0001_initial"]))

    assert (unknown["kind"], unknown["restored"]) == ("state_unknown", False)
    assert "applied just before: shop.0001_initial, shop.0002_item_sku" in unknown["message"]
    assert (unread["kind"], unread["restored"], unread["after"]) == ("state_unknown", False, None)
    assert (restored["kind"], restored["restored"]) == ("migrate_failed", True)


def test_hard_timeout_keeps_an_outcome_already_known() -> None:
    progress = probe.Progress()
    progress.migrating({"ok": True, "plan": []}, state(shop=[]), state(shop=["0001_initial"]))
    progress.migrated(["Applying shop.0001_initial... OK"])
    never_read = pytest.fail  # the outcome is known: the database is not read

    document = probe.hard_timeout_document(progress, 9, io.StringIO(), never_read)

    assert document == {
        "ok": True,
        "plan": [],
        "after": state(shop=["0001_initial"]),
        "migrate_output": ["Applying shop.0001_initial... OK"],
    }


def test_hard_timeout_before_migrate_began_says_nothing_was_migrated() -> None:
    started = time.monotonic()

    document = probe.hard_timeout_document(probe.Progress(), 9, io.StringIO(), pytest.fail)

    assert document["kind"] == "timeout"
    assert "nothing was migrated" in document["message"] and "was killed" in document["message"]
    assert time.monotonic() - started < 1
