"""What testinfra asks of a lab server, shared by every scenario's tests.

Everything runs inside the lab server (the Molecule instance) through its docker
connection: SQL through the database container, HTTP to 127.0.0.1 there.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from pathlib import Path

DB_CONTAINER = "server-postgres-1"
API_CONTAINER = "api"
PROJECT_DIR = "/home/deploy/Depotix"
BACKUP_DIR = "/home/deploy/backups"
REPORTS_DIR = f"{PROJECT_DIR}/reports"
# Checksums of every application table's contents, without the stock writer's rows.
CHECKSUMS_SQL = Path(__file__).parent / "files" / "table_checksums.sql"
# The CHECK constraints migration 0008 (release 2.0 and later) adds: (table, name, definition).
CHECKS_0008 = [
    ("inventory_stockmovement", "inventory_stockmovement_qty_base_positive", "CHECK ((qty_base > 0))"),
    ("inventory_inventoryitem", "inventory_inventoryitem_quantity_non_negative", "CHECK ((quantity >= 0))"),
]


def psql(host, sql: str, database: str = "depotix") -> str:
    """Return the unaligned, tuples-only output of one SQL statement."""
    result = host.run(f"docker exec {DB_CONTAINER} psql -X -A -t -v ON_ERROR_STOP=1 -U postgres -d {database} "
                      f"-c {quote(sql)}")
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def quote(text: str) -> str:
    """Return text quoted for a POSIX shell."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def scalar(host, sql: str) -> int:
    return int(psql(host, sql))


def applied_migrations(host, app: str) -> list[str]:
    out = psql(host, f"SELECT name FROM django_migrations WHERE app = '{app}' ORDER BY id")
    return out.splitlines()


def columns(host, table: str) -> set[str]:
    out = psql(host, f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'")
    return set(out.splitlines())


def check_constraints(host, table: str) -> dict[str, str]:
    """Return {constraint name: definition} of the CHECK constraints of a table."""
    out = psql(host, "SELECT conname || '|' || pg_get_constraintdef(oid) FROM pg_constraint "
                     f"WHERE conrelid = '{table}'::regclass AND contype = 'c'")
    return dict(line.split("|", 1) for line in out.splitlines())


def indexes(host, table: str) -> dict[str, str]:
    out = psql(host, f"SELECT indexname || '|' || indexdef FROM pg_indexes WHERE tablename = '{table}'")
    return dict(line.split("|", 1) for line in out.splitlines())


def table_counts(host) -> dict[str, int]:
    """Return the row count of every inventory and token table."""
    tables = psql(host, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND (tablename LIKE 'inventory_%' OR tablename LIKE 'apitokens_%') ORDER BY 1")
    return {t: scalar(host, f"SELECT count(*) FROM {t}") for t in tables.splitlines()}


def health(host) -> tuple[int, dict]:
    """Return (HTTP status, JSON body) of GET /healthz from inside the server, through the edge."""
    out = host.run("curl -s -m 5 -w '\\n%{http_code}' http://127.0.0.1/healthz").stdout
    body, _, status = out.rpartition("\n")
    try:
        return int(status), json.loads(body or "{}")
    except ValueError:
        return int(status or 0), {}


def ledger(host) -> list[dict]:
    return json.loads(host.file(f"{PROJECT_DIR}/releases.json").content_string)["entries"]


def container_image(host, name: str) -> str:
    return host.check_output("docker inspect --format '{{.Config.Image}}' %s", name)


def container_health(host, name: str, settle: float = 45.0) -> str:
    """Return Docker's health verdict on a container, waiting while it is still 'starting'.

    A container the play has just recreated stays 'starting' until its first healthcheck
    interval has passed, even when it already answers; this waits (bounded by `settle`
    seconds) for a verdict and returns whatever Docker says then, 'starting' included.
    """
    deadline = time.monotonic() + settle
    while True:
        status = host.check_output("docker inspect --format '{{.State.Health.Status}}' %s", name)
        if status != "starting" or time.monotonic() >= deadline:
            return status
        time.sleep(1)


def assert_api_serves(host, release: str) -> None:
    """The API container runs `release`'s image, Docker calls it healthy, and /healthz
    answers 200 for that release with the database reachable."""
    assert container_image(host, "api") == f"depotix-lab/api:{release}"
    assert container_health(host, "api") == "healthy"
    status, body = health(host)
    assert (status, body.get("release"), body.get("database")) == (200, release, True)


def recorded(host, name: str) -> dict:
    """Return a JSON record a scenario's converge left in /root (e.g. counts before a run)."""
    return json.loads(host.file(f"/root/{name}.json").content_string)


def run_log(name: str) -> str:
    """Return the kept output of a nested ansible-playbook run (run_playbook*.yml)."""
    return (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / f"{name}.log").read_text(errors="replace")


def killed_at(name: str) -> str:
    """Return the task banner a run kept by run_playbook_killed.yml was killed after ('' if it was not)."""
    for line in run_log(name).splitlines():
        if line.startswith("kill_during: killed the run"):
            return line.split(" after: ", 1)[1]
    return ""


def remote_kill(name: str) -> dict:
    """Return what kill_during.py wrote of the remote work of a killed run ({} if nothing).

    what, pids and args of the work it froze running at the kill, killed (the pids, or the
    one-off container, the SIGKILL reached), gone and gone_after (seconds after the kill).
    """
    for line in run_log(name).splitlines():
        if line.startswith("kill_during: remote facts "):
            return json.loads(line.removeprefix("kill_during: remote facts "))
    return {}


def assert_remote_work_killed(name: str, what: str, args: str) -> dict:
    """The run `name` was killed with its remote work: `what` (e.g. "in container api") ran, with a
    command line matching `args`, when the run was killed; the kill reached it and it was gone after."""
    facts = remote_kill(name)
    assert facts, f"{name}: no remote work was killed"
    assert what in facts["what"] and facts["running_at_kill"] and facts["pids"], facts
    assert any(re.search(args, line) for line in facts["args"]), facts
    assert facts["killed"] and facts["gone"] and facts["gone_after"] < 60, facts
    pids = ",".join(str(pid) for pid in facts["pids"])
    assert f"pid {pids} running at kill; gone after {facts['gone_after']} s" in run_log(name)
    return facts


def rollback_reports(host, scenario: str | None = None) -> list[dict]:
    """Return the JSON reports rollback.yml wrote (of one scenario, if named), oldest first."""
    names = host.check_output(f"ls {REPORTS_DIR}").split()
    prefix = f"rollback_scenario{scenario}_" if scenario else "rollback_scenario"
    return [json.loads(host.file(f"{REPORTS_DIR}/{name}").content_string)
            for name in sorted(names) if name.startswith(prefix)]


def report_window(report: dict) -> tuple[float, float]:
    """Return the (start, end) of a report's run in epoch seconds (the report keeps whole seconds)."""
    def epoch(stamp: str) -> float:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    return epoch(report["started"].replace("Z", "+0000")), epoch(report["finished"].replace("Z", "+0000")) + 1


# --- Contents, not counts: table checksums (files/table_checksums.sql, tasks/record_checksums.yml)

def table_checksums(host) -> dict:
    """Return the checksums of every application table as they are now (same form as a record)."""
    result = host.run(f"printf '%s' {quote(CHECKSUMS_SQL.read_text())} | docker exec -i {DB_CONTAINER} "
                      "psql -X -A -t -v ON_ERROR_STOP=1 -U postgres -d depotix")
    assert result.rc == 0, result.stderr
    tables: dict = {}
    for line in result.stdout.splitlines():
        tables.update(json.loads(line))
    return tables


def key_order(key: str) -> tuple[int, str]:
    """Sort primary keys kept as text in numeric order (2 before 10)."""
    return len(key), key


def table_changes(before: dict, after: dict) -> dict:
    """Return how one table's contents changed; empty when they did not.

    Columns only one side has are named, not compared, so that a dropped column does not
    hide whether the rest of each row kept its values.
    """
    columns_before, columns_after = (list(next(iter(t["cells"].values()), {})) for t in (before, after))
    dropped = [c for c in columns_before if c not in columns_after]
    added = [c for c in columns_after if c not in columns_before]
    changes: dict = {}
    if dropped and after["cells"]:
        changes["columns_dropped"] = dropped
    if added and before["cells"]:
        changes["columns_added"] = added
    removed = sorted(set(before["cells"]) - set(after["cells"]), key=key_order)
    new = sorted(set(after["cells"]) - set(before["cells"]), key=key_order)
    changed = {}
    for key in sorted(set(before["cells"]) & set(after["cells"]), key=key_order):
        old, now = before["cells"][key], after["cells"][key]
        cells = [column for column in old if column in now and old[column] != now[column]]
        if cells:
            changed[key] = cells
    for name, value in (("rows_removed", removed), ("rows_added", new), ("cells_changed", changed)):
        if value:
            changes[name] = value
    return changes


def content_changes(before: dict, after: dict) -> dict:
    """Return {table: what changed} between two sets of table checksums; {} when every row kept
    every value. A table that is gone is {"table": "dropped", "rows": n}; a new one lists its rows."""
    changes: dict = {}
    for table in sorted(set(before) | set(after)):
        if table not in after:
            changes[table] = {"table": "dropped", "rows": before[table]["rows"]}
        elif table not in before:
            changes[table] = {"table": "added", "rows_added": sorted(after[table]["cells"], key=key_order)}
        elif changed := table_changes(before[table], after[table]):
            changes[table] = changed
    return changes


def cells_holding_data(record: dict, table: str, column: str) -> int:
    """Return how many rows of a recorded table hold a value (not NULL) in a column."""
    return sum(1 for row in record[table]["cells"].values() if row.get(column) is not None)


DROP_LINE = re.compile(r"drops (?:column (?P<table>\S+)\.(?P<column>\S+)|table (?P<whole>\S+)) "
                       r"\((?P<rows>\d+|uncounted) rows with data\)")


def drops_stated(reports: list[dict], logs: list[str]) -> dict[tuple[str, str | None], set]:
    """Return {(table, column or None): rows with data} as the runs' reports and printed plans state them.

    A run killed before its report still printed its plan; its log counts as its statement.
    """
    stated: dict[tuple[str, str | None], set] = {}
    for report in reports:
        for drop in report.get("drops") or []:
            stated.setdefault((drop["table"], drop["column"]), set()).add(drop["rows_with_data"])
    for log in logs:
        for match in DROP_LINE.finditer(log):
            where = (match["table"], match["column"]) if match["table"] else (match["whole"], None)
            stated.setdefault(where, set()).add(None if match["rows"] == "uncounted" else int(match["rows"]))
    return stated


def assert_dropped_data_accounted(before: dict, after: dict, reports: list[dict], logs: list[str]) -> list[str]:
    """Every column or table with data that is gone was announced, with its rows, by a run's plan or report.

    Returns the drops checked, as `table.column: n rows`, for the scenario's log.
    """
    stated = drops_stated(reports, logs)
    checked = []
    for table, change in content_changes(before, after).items():
        gone = [(c, cells_holding_data(before, table, c)) for c in change.get("columns_dropped", [])]
        if change.get("table") == "dropped":
            gone.append((None, change["rows"]))
        for column, rows in gone:
            where = f"{table}.{column}" if column else f"table {table}"
            said = stated.get((table, column), set())
            assert rows in said or (None in said and rows > 0), \
                f"{where} is gone with {rows} rows of data, but the runs stated {sorted(said, key=str) or 'nothing'}"
            checked.append(f"{where}: {rows} rows")
    return checked


# --- The stock writer (files/stock_writer.py, tasks/writer_start.yml and writer_stop.yml)

def writer_figures(host, name: str) -> tuple[dict, dict]:
    """Return (summary, check) that writer_stop.yml left for the writer `name`."""
    return recorded(host, f"writer_{name}"), recorded(host, f"writer_{name}_check")


def writer_activity(summary: dict, start: float, end: float) -> tuple[int, int]:
    """Return (acknowledged, failed) answers the writer had between start and end (epoch seconds)."""
    seconds = [counts for second, counts in summary["timeline"].items() if start <= int(second) <= end]
    return sum(c[0] for c in seconds), sum(c[1] for c in seconds)


def assert_no_failed_request(host, name: str, min_polls: int, min_writes: int) -> None:
    """The poller and the writer called `name` went through a change (at least so many
    polls and posts) and not one of their requests failed: every poll 200, every post 2xx."""
    poll = recorded(host, f"poller_{name}")
    summary, _ = writer_figures(host, name)
    print(f"{name}: poller {poll}; writer sent {summary['sent']}, failed {summary['failed_by']}")
    assert poll["samples"] > min_polls and summary["sent"] > min_writes
    assert (poll["non_200_samples"], summary["failed"]) == (0, 0)


def assert_writer_lost_nothing(host, name: str, windows: dict[str, tuple[float, float]],
                               must_succeed: tuple[str, ...] = ()) -> dict:
    """The writer really wrote while each run of `windows` ran (an answer within its window; an
    acknowledged movement for the runs in `must_succeed`), and every movement the API
    acknowledged (2xx) is in the database, once. Returns the check, printed for the log."""
    summary, check = writer_figures(host, name)
    print(f"writer {name}: " + json.dumps({k: v for k, v in check.items() if k != "lost_ids"}))
    assert check["acknowledged"] > 0 and len(summary["acknowledged_ids"]) == check["acknowledged"]
    for run, (start, end) in windows.items():
        acknowledged, failed = writer_activity(summary, start, end)
        print(f"writer {name} during {run}: {acknowledged} acknowledged, {failed} failed")
        assert acknowledged + failed > 0, f"the writer was not writing during {run}"
        if run in must_succeed:
            assert acknowledged > 0, f"no movement was acknowledged during {run}"
    assert (check["lost"], check["lost_ids"][:20]) == (0, []), "acknowledged movements missing from the database"
    assert check["found_in_database"] == check["acknowledged"] and check["duplicated_ids"] == []
    return check
