"""What testinfra asks of a lab server, shared by every scenario's tests.

Everything runs inside the lab server (the Molecule instance) through its docker
connection: SQL through the database container, HTTP to 127.0.0.1 there.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

DB_CONTAINER = "server-postgres-1"
API_CONTAINER = "api"
PROJECT_DIR = "/home/deploy/Depotix"
BACKUP_DIR = "/home/deploy/backups"
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
    """Return (HTTP status, JSON body) of GET /healthz from inside the server."""
    out = host.run("curl -s -m 5 -w '\\n%{http_code}' http://127.0.0.1:8000/healthz").stdout
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
