"""What this scenario's tests read: the undo's JSON reports, the writer's movements in a database, the messages."""

from __future__ import annotations

import json

from depotix_checks import PROJECT_DIR, psql

REPORTS_DIR = f"{PROJECT_DIR}/reports"


def undo_reports(host, release: str) -> list[dict]:
    """Return the reports the deploy's undo wrote for deploys of `release`, oldest first."""
    names = sorted(name for name in host.check_output(f"ls {REPORTS_DIR}").split() if name.startswith("deploy_undo_"))
    reports = [json.loads(host.file(f"{REPORTS_DIR}/{name}").content_string) for name in names]
    return [report for report in reports if report["release"] == release]


def writer_notes(host, database: str, name: str) -> set[str]:
    """Return the notes of the movements the stock writer `name` posted that `database` holds."""
    out = psql(host, f"SELECT note FROM inventory_stockmovement WHERE starts_with(note, 'writer:{name}:')", database)
    return set(out.splitlines())


def movements(host, database: str) -> dict[int, str]:
    """Return {id: note} of every stock movement in `database`."""
    out = psql(host, "SELECT id || '|' || note FROM inventory_stockmovement", database)
    return {int(key): note for key, note in (line.split("|", 1) for line in out.splitlines())}


def kept_databases(host) -> list[str]:
    """Return the databases restores kept aside (<database>_replaced...), by name."""
    return psql(host, "SELECT datname FROM pg_database WHERE starts_with(datname, 'depotix_replaced') "
                      "ORDER BY 1", "postgres").split()


def said(log: str, text: str) -> bool:
    """Return whether a run's output says `text`, whatever the line breaks and spacing of either."""
    return " ".join(text.split()) in " ".join(log.replace("\\n", " ").split())


def final_message(log: str) -> str:
    """Return the message the failed deploy ended with (for an assertion's explanation)."""
    found = [line for line in log.splitlines() if '"msg": "Deploying' in line]
    return found[-1] if found else log[-3000:]
