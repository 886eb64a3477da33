"""The command line: arguments, running one command (under the directory's lock when it writes), its outcome.

The result is one JSON document on stdout; a failure is one line on stderr (exit 1),
or, with --log, a line appended to that file (a crash: its traceback, exit 2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import depotix_backup
from depotix_backup import clock
from depotix_backup.database import table_snapshot
from depotix_backup.dump import cmd_dump
from depotix_backup.errors import BackupError, Terminated
from depotix_backup.files import directory_lock
from depotix_backup.names import in_future, list_dumps, resolve_dump
from depotix_backup.offsite import cmd_offsite
from depotix_backup.pitr import (BACKUP_TYPES, archiver_state_or_none, cmd_pitr_backup, cmd_pitr_check,
                                 cmd_pitr_drill, cmd_pitr_expire, cmd_pitr_plan, cmd_pitr_restore, cmd_pitr_verify,
                                 cmd_restore_point, read_points, repository_info, restore_plan)
from depotix_backup.restore import cmd_discard_previous, cmd_drill, cmd_restore, cmd_verify_restore
from depotix_backup.retention import cmd_prune
from depotix_backup.schedule import cmd_scheduled
from depotix_backup.settings import load_config
from depotix_backup.status import record_outcome
from depotix_backup.verify import cmd_plan, cmd_verify

LOCKING_COMMANDS = {"dump", "restore", "drill", "prune", "offsite", "scheduled", "discard-previous",
                    "pitr-backup", "pitr-expire", "pitr-restore", "pitr-drill"}
# The runs whose outcome goes to the status file (monitoring).
REPORTED_COMMANDS = {"scheduled", "drill", "pitr-backup", "pitr-verify", "pitr-check", "pitr-drill"}
NAME_HELP = "file name in the backup directory, or latest"
UNRECORDED_HELP = "accept a dump whose .json record is missing or torn (the output lists what goes unchecked)"


def cmd_list(config: dict[str, Any]) -> dict[str, Any]:
    """Return the dumps of the backup directory, newest first (by sequence); say which are stamped in the future."""
    backup_dir = Path(config["directory"])
    dumps, now = list_dumps(config), clock.utc_now()
    return {"changed": False, "directory": str(backup_dir), "future": in_future(dumps, now), "dumps": [
        {"file": d.name, "time": d.time.isoformat(), "label": d.label, "complete": d.good, "sequence": d.sequence,
         "future": d.time > now, "problem": d.problem, "size": (backup_dir / d.name).stat().st_size}
        for d in reversed(dumps)]}


def cmd_rows(config: dict[str, Any]) -> dict[str, Any]:
    """Return every table's row count in the live database, and their sum."""
    tables = table_snapshot(config, config["database"], checksums=False)["tables"]
    return {"changed": False, "database": config["database"], "tables": tables, "rows": sum(tables.values())}


def add_named_commands(sub: Any) -> None:
    """Add the commands that take a dump's name: verify, plan, offsite, restore, drill."""
    for command, text in (("plan", "compare a dump's migrations with an image's (django_migration apps JSON on stdin)"),
                          ("offsite", "copy a dump and its sidecars with the configured offsite command")):
        sub.add_parser(command, help=text).add_argument("name", help=NAME_HELP)
    for command, text in (("verify", "check a dump's checksum, record and archive"),
                          ("restore", "restore a verified dump over the live database"),
                          ("drill", "restore a dump into a scratch database and compare row counts and checksums")):
        sub_parser = sub.add_parser(command, help=text)
        sub_parser.add_argument("name", help=NAME_HELP)
        sub_parser.add_argument("--jobs", type=int, default=None, help="parallel pg_restore jobs")
        if command != "drill":
            sub_parser.add_argument("--allow-unrecorded", action="store_true", help=UNRECORDED_HELP)
        if command == "verify":
            sub_parser.add_argument("--restore", action="store_true",
                                    help="also restore it into a scratch database and compare every table's row "
                                         "count and content checksum with its record (as the drill does)")
        if command == "restore":
            sub_parser.add_argument("--keep-previous", action="store_true",
                                    help="keep the replaced database as <database>_replaced "
                                         "(discard-previous drops it)")
            sub_parser.add_argument("--keep-as", default=None, metavar="NAME",
                                    help="keep the replaced database under this new name, <database>_replaced_<suffix> "
                                         "(discard-previous --database NAME drops it; no later restore does)")


def parse_args(argv: list[str], config_file: Path) -> argparse.Namespace:
    """Return the parsed command line; `config_file` is the default of --config."""
    description = (depotix_backup.__doc__ or "").splitlines()[0]
    parser = argparse.ArgumentParser(prog="depotix-backup", description=description)
    parser.add_argument("--config", type=Path, default=config_file)
    parser.add_argument("--log", type=Path, help="append the outcome to this file instead of printing errors")
    sub = parser.add_subparsers(dest="command", required=True)
    dump = sub.add_parser("dump", help="take a verified dump")
    dump.add_argument("--label", default=None, help="part of the file name; default: the ledger's current release")
    add_named_commands(sub)
    discard = sub.add_parser("discard-previous", help="drop a database a restore swapped out and kept")
    discard.add_argument("--database", default=None, metavar="NAME",
                         help="the kept database to drop (default: <database>_replaced, of --keep-previous)")
    prune = sub.add_parser("prune", help="delete the dumps the retention policy does not keep")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    prune.add_argument("--verified", default=None, help="the newest dump, just verified (not checked again)")
    sub.add_parser("scheduled", help="the host's daily job: dump, offsite copy, retention")
    sub.add_parser("list", help="list the dumps, newest first")
    add_pitr_commands(sub)
    return parser.parse_args(argv)


def add_pitr_target(sub_parser: Any) -> None:
    """Add the recovery target options: a time, a restore point, or neither (the newest archived WAL)."""
    target = sub_parser.add_mutually_exclusive_group()
    target.add_argument("--target-time", default=None, help="a time with its offset, e.g. '2026-11-30 10:14:59+00'")
    target.add_argument("--target-name", default=None, help="a recorded restore point's name")


def add_pitr_commands(sub: Any) -> None:
    """Add the point-in-time recovery commands (pgBackRest in the database container)."""
    backup = sub.add_parser("pitr-backup", help="take a pgBackRest backup (full, diff or incr)")
    backup.add_argument("--type", choices=BACKUP_TYPES, required=True)
    sub.add_parser("pitr-expire", help="expire pgBackRest backups and WAL beyond the retention")
    sub.add_parser("pitr-verify", help="verify the repository: checksums of every backup file and WAL segment")
    sub.add_parser("pitr-check", help="check that a WAL switch reaches the repository")
    sub.add_parser("pitr-drill", help="recover the newest backup set and its WAL into a scratch cluster, to a restore "
                                      "point just created, and compare every table's row count with the live one")
    sub.add_parser("rows", help="every table's row count in the live database")
    sub.add_parser("pitr-info", help="the repository's backups, WAL range, archiver state and restore points")
    plan = sub.add_parser("pitr-plan", help="which backup set and WAL a recovery to the target uses (read-only)")
    add_pitr_target(plan)
    restore = sub.add_parser("pitr-restore", help="restore a backup set into a new volume, with recovery settings")
    add_pitr_target(restore)
    restore.add_argument("--volume", required=True, help="the new Docker volume (never the live one)")
    restore.add_argument("--image", required=True, help="the database image (it runs pgbackrest restore)")
    restore.add_argument("--set", required=True, help="the backup set (pitr-plan names it)")
    restore.add_argument("--timeline", type=int, default=None,
                         help="the live database's timeline, whose history the recovery follows (pitr-plan names it)")
    point = sub.add_parser("restore-point", help="create and record a named PostgreSQL restore point")
    point.add_argument("name")
    point.add_argument("--action", default="manual", help="what is about to change (deploy, rollback2, restore)")
    point.add_argument("--release", default=None, help="the release running now")


def plan_input() -> dict[str, Any]:
    """Return django_migration's apps, read as JSON from stdin (plan's input)."""
    try:
        return json.loads(sys.stdin.read() or "{}")
    except ValueError as exc:
        raise BackupError(f"plan expects django_migration's apps as JSON on stdin: {exc}") from exc


def run_command(config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Run the command the arguments name and return its result."""
    jobs = getattr(args, "jobs", None) or int(config.get("jobs", 2))
    commands: dict[str, Callable[[], dict[str, Any]]] = {
        "dump": lambda: cmd_dump(config, args.label),
        "verify": lambda: (cmd_verify_restore(config, args.name, jobs, args.allow_unrecorded) if args.restore
                           else cmd_verify(config, resolve_dump(config, args.name), args.allow_unrecorded)),
        "plan": lambda: cmd_plan(config, args.name, plan_input()),
        "restore": lambda: cmd_restore(config, args.name, jobs, args.keep_previous, args.allow_unrecorded,
                                       args.keep_as),
        "discard-previous": lambda: cmd_discard_previous(config, args.database),
        "drill": lambda: cmd_drill(config, args.name, jobs),
        "prune": lambda: cmd_prune(config, args.dry_run, args.verified),
        "offsite": lambda: cmd_offsite(config, args.name),
        "scheduled": lambda: cmd_scheduled(config),
        "pitr-backup": lambda: cmd_pitr_backup(config, args.type),
        "pitr-expire": lambda: cmd_pitr_expire(config),
        "pitr-verify": lambda: cmd_pitr_verify(config),
        "pitr-check": lambda: cmd_pitr_check(config),
        "pitr-drill": lambda: cmd_pitr_drill(config),
        "rows": lambda: cmd_rows(config),
        "pitr-info": lambda: {"changed": False, **repository_info(config), "archiver": archiver_state_or_none(config),
                              "restore_points": read_points(config)},
        "pitr-plan": lambda: cmd_pitr_plan(config, args.target_time, args.target_name),
        "pitr-restore": lambda: cmd_pitr_restore(config, restore_plan(args.set, args.target_time, args.target_name,
                                                                      args.timeline),
                                                 args.volume, args.image),
        "restore-point": lambda: cmd_restore_point(config, args.name, args.action, args.release),
    }
    return commands.get(args.command, lambda: cmd_list(config))()


def run_locked(config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Run the command, holding the directory's lock if it writes."""
    if args.command in LOCKING_COMMANDS or getattr(args, "restore", False):
        with directory_lock(config):
            return run_command(config, args)
    return run_command(config, args)


def execute(args: argparse.Namespace) -> dict[str, Any]:
    """Read the settings and run the command; a scheduled run's or drill's outcome goes to the status file.

    A failure is reported too, also one that could not take the directory's lock.
    """
    config = load_config(args.config)
    if args.command not in REPORTED_COMMANDS:
        return run_locked(config, args)
    started = time.monotonic()
    try:
        result = run_locked(config, args)
    except BaseException:
        try:
            record_outcome(config, args.command, None, time.monotonic() - started)
        except BackupError:
            pass  # the run's own failure is the one to report
        raise
    record_outcome(config, args.command, result, time.monotonic() - started)
    return result


def append_log(path: Path, command: str, text: str) -> None:
    """Append one timestamped line to the log file."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with path.open("a") as fh:
        fh.write(f"{stamp} depotix-backup[{os.getpid()}] {command}: {text}\n")


def raise_terminated(signum: int, _frame: Any) -> None:
    """Signal handler: turn SIGTERM or SIGHUP into Terminated, so that the run unwinds."""
    raise Terminated(f"stopped by signal {signum}")


def main(argv: list[str], config_file: Path) -> int:
    """Run the command line `argv`; return the exit code (0 done, 1 failed, 2 crashed with --log)."""
    os.umask(0o077)  # every file this script creates (dumps, records, lock, log) is 0600
    args = parse_args(argv, config_file)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, raise_terminated)
    try:
        result = execute(args)
    except (BackupError, Terminated) as exc:
        if args.log:
            append_log(args.log, args.command, f"FAILED: {exc}")
        else:
            print(f"depotix-backup: {exc}", file=sys.stderr)
        return 1
    except Exception:
        if not args.log:
            raise
        append_log(args.log, args.command, "CRASHED:\n" + traceback.format_exc())
        return 2
    if args.log:
        outcome = f"{result['outcome']} " if args.command == "drill" and result.get("outcome") else ""
        append_log(args.log, args.command, f"ok {outcome}{json.dumps(result, sort_keys=True)}")
    print(json.dumps(result, sort_keys=True))
    return 0
