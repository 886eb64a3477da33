"""Talking to the database: commands in its container, psql as the superuser, the snapshot of what it holds."""

from __future__ import annotations

import subprocess
from typing import Any

from depotix_backup.errors import BackupError


def docker_exec(config: dict[str, Any], args: list[str], env: dict[str, str] | None = None,
                **kwargs: Any) -> subprocess.CompletedProcess:
    """Run a command inside the database container (as root there; clients connect as the superuser)."""
    env_args = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
    cmd = [config["docker"], "exec", "-i", *env_args, config["container"], *args]
    return subprocess.run(cmd, check=False, **kwargs)


def last_line(text: str, default: str = "no answer") -> str:
    """Return the last non-empty line of a command's output."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else default


def first_error(text: str, default: str = "no message") -> str:
    """Return the line of a PostgreSQL client's stderr that says what failed (its first error), else the last."""
    for line in text.splitlines():
        if any(word in line for word in ("error:", "ERROR:", "FATAL:")):
            return line.strip()
    return last_line(text, default)


def database_answers(config: dict[str, Any]) -> None:
    """Fail early, with a clear message, when the database does not answer."""
    probe = docker_exec(config, ["pg_isready", "-U", config["user"], "-d", config["database"]],
                        capture_output=True, text=True)
    if probe.returncode != 0:
        raise BackupError(
            f"database {config['database']} in container {config['container']} does not answer "
            f"({last_line(probe.stderr or probe.stdout)}): start it (site.yml) and rerun; earlier dumps are untouched."
        )


def psql_argv(config: dict[str, Any], database: str) -> list[str]:
    """Return psql's arguments (after the container): unaligned output, stop at the first error."""
    return ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", config["user"], "-d", database]


def psql(config: dict[str, Any], sql: str, database: str = "postgres") -> str:
    """Run SQL as the superuser over the container's local socket; return its output."""
    done = docker_exec(config, psql_argv(config, database), input=sql, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"psql failed on {database}: {first_error(done.stderr)}")
    return done.stdout


def quote_ident(name: str) -> str:
    """Return a PostgreSQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Return a PostgreSQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def snapshot_sql() -> str:
    """SQL printing `count<TAB>schema.table<TAB>rows` per user table and `migration<TAB>app<TAB>name`.

    Run inside the dump's snapshot, it records what the dump holds: the drill and the
    restore compare counts with it, and restore.yml compares the migrations with the image.
    """
    return r"""
SELECT format('SELECT ''count'' || E''\t'' || %L || E''\t'' || count(*) FROM %I.%I;',
              n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1 \gexec
SELECT 'SELECT ''migration'' || E''\t'' || app || E''\t'' || name FROM django_migrations ORDER BY id;'
WHERE to_regclass('django_migrations') IS NOT NULL \gexec
"""


def parse_snapshot(output: str) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Return ({table: rows}, {app: [applied migrations in order]}) from snapshot_sql's output."""
    counts: dict[str, int] = {}
    migrations: dict[str, list[str]] = {}
    for line in output.splitlines():
        kind, _, rest = line.partition("\t")
        first, _, second = rest.partition("\t")
        if kind == "count" and second:
            counts[first] = int(second)
        elif kind == "migration" and second:
            migrations.setdefault(first, []).append(second)
    return counts, migrations


def table_counts(config: dict[str, Any], database: str) -> dict[str, int]:
    """Return the row count of every user table of a database."""
    return parse_snapshot(psql(config, snapshot_sql(), database))[0]
