"""pg_dump and the record of what it holds, read in one exported snapshot, each with a time limit.

A psql session opens a repeatable-read transaction and exports its snapshot; pg_dump
dumps that snapshot (--snapshot) while the session counts and checksums every table in
it. Both give up on a table lock after lock_wait_timeout seconds (the session's
lock_timeout, pg_dump's --lock-wait-timeout), and the whole is stopped after
dump_timeout seconds: then the script reads what they were waiting on, ends their
server sessions (found by their application_name) and fails, saying so.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from depotix_backup.database import (docker_timeout, first_error, parse_snapshot, psql, psql_argv, quote_literal,
                                     snapshot_sql)
from depotix_backup.errors import BackupError, Unreachable

# What psql or docker say when the database is not there to answer (rather than refusing something).
NOT_ANSWERING = ("connection to server", "could not connect", "is not running", "No such container",
                 "the database system is", "Cannot connect to the Docker daemon")


def lock_wait(config: dict[str, Any]) -> int:
    """Return the seconds a table lock is waited for (the settings' lock_wait_timeout; 0 waits forever)."""
    return int(config.get("lock_wait_timeout", 120))


def dump_limit(config: dict[str, Any]) -> float:
    """Return the seconds pg_dump may take in all (the settings' dump_timeout)."""
    return float(config.get("dump_timeout", 3600))


def application_names() -> dict[str, str]:
    """Return the application_name of the snapshot's session and of pg_dump, unique to this run."""
    return {"session": f"depotix-backup-snapshot-{os.getpid()}", "pg_dump": f"depotix-backup-dump-{os.getpid()}"}


def start(argv: list[str], **kwargs: Any) -> subprocess.Popen:
    """Start a docker command; a docker CLI that cannot run raises Unreachable."""
    try:
        return subprocess.Popen(argv, **kwargs)
    except OSError as exc:
        raise Unreachable(f"the docker CLI {argv[0]} cannot run ({exc.strerror})") from exc


def open_session(config: dict[str, Any], name: str) -> subprocess.Popen:
    """Start the psql session (in the container, on the live database) that exports the dump's snapshot."""
    return start([config["docker"], "exec", "-i", "-e", f"PGAPPNAME={name}", config["container"],
                  *psql_argv(config, config["database"])],
                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)


def export_snapshot(config: dict[str, Any], session: subprocess.Popen) -> str:
    """Open a repeatable-read transaction in the session; return the id of the snapshot it exports."""
    assert session.stdin and session.stdout and session.stderr
    try:
        session.stdin.write(f"SET lock_timeout = '{lock_wait(config)}s';\n"
                            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_export_snapshot();\n")
        session.stdin.flush()
    except BrokenPipeError:
        pass  # the session's docker exec already ended (the database is down, say): its stderr says why
    answered = select.select([session.stdout], [], [], docker_timeout(config))[0]
    snapshot = session.stdout.readline().strip() if answered else ""
    if not snapshot:
        session.kill()
        if not answered:
            raise BackupError("could not open a snapshot of the database: no answer within "
                              f"{docker_timeout(config):g} s (backup_docker_timeout)")
        reason = first_error(session.stderr.read())
        if any(sign in reason for sign in NOT_ANSWERING):
            raise BackupError(f"database {config['database']} in container {config['container']} does not answer "
                              f"({reason}): start it (site.yml) and rerun")
        raise BackupError("could not open a snapshot of the database: " + reason)
    return snapshot


# pg_dump's `docker exec` starts beside the session's and waits for the snapshot's id on its
# stdin: the two start-ups overlap instead of adding up. "$0" "$@" is pg_dump and its arguments.
AWAIT_SNAPSHOT = 'read -r snapshot && exec "$0" "$@" --snapshot="$snapshot"'


def pg_dump_argv(config: dict[str, Any], name: str) -> list[str]:
    """Return the command that dumps the database (custom format) in the snapshot whose id it reads on stdin."""
    seconds = lock_wait(config)
    lock_args = [f"--lock-wait-timeout={seconds * 1000}"] if seconds > 0 else []
    return [config["docker"], "exec", "-i", "-e", f"PGAPPNAME={name}", config["container"], "sh", "-c",
            AWAIT_SNAPSHOT, "pg_dump", "-Fc", "-Z", str(config.get("compress", 6)), *lock_args,
            "-U", config["user"], "-d", config["database"]]


def lock_message(config: dict[str, Any], stderr: str) -> str | None:
    """Return what a session that gave up on a table lock waited for, or None when it did not."""
    if "lock timeout" not in stderr and not ("statement timeout" in stderr and "LOCK TABLE" in stderr):
        return None
    found = re.search(r"LOCK TABLE (\S+) IN", stderr) or re.search(r"FROM (\S+) r;", stderr)
    return (f"waited more than {lock_wait(config)} s (backup_lock_wait_timeout) for a lock on "
            f"{found.group(1) if found else 'a table'}, which another session holds (a migration, a LOCK TABLE, "
            "a long ALTER); rerun once it is released")


def waits_sql(names: dict[str, str]) -> str:
    """SQL that prints what the run's sessions wait on (and who blocks them), then ends them."""
    ours = ", ".join(quote_literal(name) for name in names.values())
    return (r"SELECT CASE a.application_name WHEN " + quote_literal(names["pg_dump"]) + " THEN 'pg_dump' "
            r"ELSE 'the snapshot''s session' END || ' was ' || coalesce('waiting on ' || a.wait_event_type || ' ' "
            r"|| a.wait_event, a.state) || coalesce(', held by ' || (SELECT string_agg(format('pid %s (%s)', b.pid, "
            r"left(regexp_replace(b.query, '\s+', ' ', 'g'), 80)), ', ') FROM pg_stat_activity b "
            r"WHERE b.pid = ANY (pg_blocking_pids(a.pid))), '') || ', in: ' || "
            r"left(regexp_replace(a.query, '\s+', ' ', 'g'), 100) "
            f"FROM pg_stat_activity a WHERE a.application_name IN ({ours}) ORDER BY 1;\n"
            "DO $$BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE application_name IN ({ours}); END$$;\n")


def timeout_message(config: dict[str, Any], names: dict[str, str]) -> str:
    """End the run's server sessions; return the failure, with what they were waiting on."""
    try:
        waits = "; ".join(psql(config, waits_sql(names), timeout=docker_timeout(config)).split("\n")).strip("; ")
    except BackupError as exc:
        waits = f"what it waited on could not be read ({exc})"
    return (f"the dump did not finish within {dump_limit(config):g} s (backup_dump_timeout) and was stopped: "
            f"{waits or 'nothing of it ran in the database (the docker CLI or the container did not answer)'}")


def remaining(deadline: float) -> float:
    """Return the seconds left until `deadline` (monotonic), at least a little."""
    return max(0.01, deadline - time.monotonic())


def dump_in_snapshot(config: dict[str, Any], session: subprocess.Popen, dump: subprocess.Popen,
                     names: dict[str, str]) -> tuple[bytes, str, str]:
    """Give pg_dump the session's snapshot and wait for both; return pg_dump's stderr and the session's output.

    The session reads the record (row counts, checksums, migrations) while pg_dump runs;
    its exporting transaction stays open until pg_dump is done (pg_dump imports the
    snapshot when it starts, whenever that is).
    """
    assert session.stdin and dump.stdin
    deadline = time.monotonic() + dump_limit(config)
    snapshot = export_snapshot(config, session)
    try:
        dump.stdin.write(snapshot.encode() + b"\n")
        dump.stdin.flush()  # communicate() closes it
    except BrokenPipeError:
        pass  # pg_dump's exec already failed: its stderr says why
    try:
        session.stdin.write(snapshot_sql())
        session.stdin.flush()
    except BrokenPipeError:
        pass  # the session died: pg_dump fails too, and says why
    try:
        _, dump_err = dump.communicate(timeout=remaining(deadline))
        stdout, stderr = session.communicate("\nCOMMIT;\n", timeout=remaining(deadline))
    except subprocess.TimeoutExpired:
        raise BackupError(timeout_message(config, names)) from None
    return dump_err, stdout, stderr


def run_dump(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Dump the database into `out` (flushed to the disk); return what it holds (parse_snapshot's record)."""
    names = application_names()
    session = open_session(config, names["session"])
    try:
        with out.open("wb") as fh:
            dump = start(pg_dump_argv(config, names["pg_dump"]), stdin=subprocess.PIPE, stdout=fh,
                         stderr=subprocess.PIPE)
            try:
                dump_err, stdout, stderr = dump_in_snapshot(config, session, dump, names)
                if dump.returncode == 0:
                    os.fsync(fh.fileno())
            finally:
                if dump.poll() is None:
                    dump.kill()
                    dump.wait()
        if dump.returncode != 0:
            error = dump_err.decode(errors="replace")
            raise BackupError("pg_dump failed: " + (lock_message(config, error) or first_error(error)))
        if session.returncode != 0:
            raise BackupError("recording the row counts failed: " + (lock_message(config, stderr)
                                                                       or first_error(stderr)))
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    return parse_snapshot(stdout)
