"""Talking to the database: commands in its container, psql as the superuser, the snapshot of what it holds."""

from __future__ import annotations

import subprocess
from typing import Any

from depotix_backup.errors import BackupError, Unreachable

# What the per-table checksums are: the sum of a 64-bit hash of every row, in one scan with
# the row count (no sort, order-free: a changed, lost or extra row changes it). "r<sum>":
# hash_record_extended of the row's values (PostgreSQL 14+), when every column's type
# hashes its value the same in a restored database; "t<sum>": hashtextextended of the
# row's text otherwise (enums and reg* types hash OIDs, which a restore renumbers; json and
# geometric types have no hash), in fixed output settings. A record that names another
# method has its checksums left unchecked.
CHECKSUM_METHOD = "sum-of-row-hashes-v2"
STABLE_HASH_TYPES = ("boolean", "smallint", "integer", "bigint", "real", "double precision", "numeric", "text",
                     "character varying", "character", "name", "bytea", "date", "time without time zone",
                     "timestamp without time zone", "timestamp with time zone", "interval", "uuid", "jsonb",
                     "inet", "cidr", "macaddr")
# Output settings the row text depends on, the same in the dump's snapshot and in a restored database.
STABLE_OUTPUT = ("SET TimeZone = 'UTC';\nSET DateStyle = 'ISO, YMD';\nSET IntervalStyle = 'postgres';\n"
                 "SET extra_float_digits = 3;\nSET bytea_output = 'hex';\n")


def docker_timeout(config: dict[str, Any]) -> float:
    """Return the seconds a short docker command may take (the settings' docker_timeout)."""
    return float(config.get("docker_timeout", 120))


def docker_exec(config: dict[str, Any], args: list[str], env: dict[str, str] | None = None,
                timeout: float | None = None, user: str | None = None, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run a command inside the database container (as root there, or `user`; clients connect as the superuser).

    A docker CLI that cannot start, or does not answer within `timeout` seconds, raises
    Unreachable: that says nothing about the database or a dump.
    """
    env_args = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
    user_args = ["--user", user] if user else []
    cmd = [config["docker"], "exec", "-i", *user_args, *env_args, config["container"], *args]
    try:
        return subprocess.run(cmd, check=False, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise Unreachable(f"docker exec {args[0]} in container {config['container']} did not answer within "
                          f"{timeout:g} s (backup_docker_timeout): check the Docker daemon "
                          "(systemctl status docker)") from exc
    except OSError as exc:
        raise Unreachable(f"the docker CLI {config['docker']} cannot run ({exc.strerror})") from exc


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


def psql_argv(config: dict[str, Any], database: str) -> list[str]:
    """Return psql's arguments (after the container): unaligned output, stop at the first error."""
    return ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", config["user"], "-d", database]


def psql(config: dict[str, Any], sql: str, database: str = "postgres", timeout: float | None = None) -> str:
    """Run SQL as the superuser over the container's local socket; return its output."""
    done = docker_exec(config, psql_argv(config, database), input=sql, capture_output=True, text=True,
                       timeout=timeout)
    if done.returncode != 0:
        raise BackupError(f"psql failed on {database}: {first_error(done.stderr)}")
    return done.stdout


def quote_ident(name: str) -> str:
    """Return a PostgreSQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Return a PostgreSQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def snapshot_sql(checksums: bool = True) -> str:
    """SQL printing `count<TAB>schema.table<TAB>rows<TAB>checksum` per user table and `migration<TAB>app<TAB>name`.

    Run inside the dump's snapshot, it records what the dump holds: the drill compares
    counts and checksums with it (a restore the counts only), and restore.yml compares
    the migrations with the image. One pass per table: count and checksum in the same
    scan (partitioned parents are counted, their partitions checksummed). Without
    `checksums` the checksum field is empty.
    """
    wanted = "c.relkind = 'r'" if checksums else "false"
    stable_types = ", ".join(quote_literal(name) for name in STABLE_HASH_TYPES)
    return STABLE_OUTPUT + r"""
SELECT format('SELECT ''count'' || E''\t'' || %L || E''\t'' || count(*) || E''\t'' || %s FROM %I.%I r;',
  n.nspname || '.' || c.relname,
  CASE WHEN NOT (""" + wanted + r""") THEN ''''''
    WHEN current_setting('server_version_num')::int >= 140000 AND NOT EXISTS (
      SELECT FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        AND (CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE t.oid END)::regtype
            <> ALL (ARRAY[""" + stable_types + r"""]::regtype[]))
    THEN '''r'' || coalesce(sum(hash_record_extended(ROW(r.*), 0)), 0)'
    ELSE '''t'' || coalesce(sum(hashtextextended(ROW(r.*)::text, 0)), 0)' END,
  n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1 \gexec
SELECT 'SELECT ''migration'' || E''\t'' || app || E''\t'' || name FROM django_migrations ORDER BY id;'
WHERE to_regclass('django_migrations') IS NOT NULL \gexec
"""


def parse_snapshot(output: str) -> dict[str, Any]:
    """Return {"tables": {table: rows}, "checksums": {table: checksum}, "migrations": {app: [names]}}."""
    counts: dict[str, int] = {}
    checksums: dict[str, str] = {}
    migrations: dict[str, list[str]] = {}
    for line in output.splitlines():
        kind, *fields = line.split("\t")
        if kind == "count" and len(fields) >= 2:
            counts[fields[0]] = int(fields[1])
            if len(fields) > 2 and fields[2]:
                checksums[fields[0]] = fields[2]
        elif kind == "migration" and len(fields) == 2:
            migrations.setdefault(fields[0], []).append(fields[1])
    return {"tables": counts, "checksums": checksums, "migrations": migrations}


def table_snapshot(config: dict[str, Any], database: str, checksums: bool = True) -> dict[str, Any]:
    """Return the row count (and checksum) of every user table of a database, in parse_snapshot's form."""
    return parse_snapshot(psql(config, snapshot_sql(checksums), database))

