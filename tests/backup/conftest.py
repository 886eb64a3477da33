"""Fixtures of the backup script's tests: its package on the path, a throwaway PostgreSQL, a fake docker CLI.

`pytest tests/backup` needs no Docker: the script's `docker exec` and `docker cp` go to
support/fake_docker.py, which runs the PostgreSQL clients on this machine against a
cluster started for the session (Debian's `postgresql` package provides it).

Tests that fake the clock or a crash run the package's commands in this process
(`inproc`), the docker calls still going to the fake docker.

The tests import the script's package (roles/backup/files/depotix_backup) from the
repository, and run the script there as the host does, with a settings file like the
one the role writes. No bytecode is written beside the package: the role copies its
folder as it is.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import datetime as dt
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "roles" / "backup" / "files"
SCRIPT = FILES / "depotix-backup.py"
FAKE_DOCKER = Path(__file__).resolve().parent / "support" / "fake_docker.py"
_names = itertools.count(1)

sys.dont_write_bytecode = True
sys.path.insert(0, str(FILES))
from depotix_backup.files import LOCK_FILE  # noqa: E402


def postgres_bindir() -> Path:
    """Return the newest installed PostgreSQL server's bin directory; fail when there is none (never skip)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        pytest.fail("no PostgreSQL server binaries: run make bootstrap (it installs Debian's postgresql package)")
    return Path(candidates[-1]).parent


def as_postgres(*command: str) -> list[str]:
    """Return the command run as the postgres user when we are root (the server refuses root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Path]:
    """Start a PostgreSQL cluster on a private socket directory (trust auth, no TCP); yield the directory."""
    bindir = postgres_bindir()
    base = Path(tempfile.mkdtemp(prefix="depotix-backup-test-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data = base / "data"
    subprocess.run(as_postgres(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                               "--encoding=UTF8", "--locale=C", "--no-sync"), check=True, capture_output=True)
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"listen_addresses = ''\nunix_socket_directories = '{base}'\n"
                   "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
    subprocess.run(as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "start"),
                   check=True, capture_output=True)
    try:
        sql(base, "postgres", "CREATE ROLE depotix LOGIN")
        yield base
    finally:
        subprocess.run(as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"),
                       check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def sql(socket_dir: Path, database: str, statement: str) -> str:
    """Run SQL as the superuser on the test cluster; return the unaligned output."""
    done = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(socket_dir),
                           "-U", "postgres", "-d", database], input=statement, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


SCHEMA = """
CREATE TABLE django_migrations (id serial PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL,
                                applied timestamptz NOT NULL DEFAULT now());
INSERT INTO django_migrations (app, name) VALUES
  ('contenttypes', '0001_initial'), ('inventory', '0001_initial'), ('inventory', '0002_stockmovement_note'),
  ('inventory', '0007_populate_customer_numbers');
CREATE TABLE inventory_inventoryitem (id serial PRIMARY KEY, sku text UNIQUE NOT NULL, quantity int NOT NULL);
CREATE TABLE inventory_stockmovement (id bigserial PRIMARY KEY,
  item_id int NOT NULL REFERENCES inventory_inventoryitem(id), type varchar(6) NOT NULL,
  qty_base int NOT NULL CHECK (qty_base >= 0), note text NOT NULL DEFAULT '');
CREATE INDEX ON inventory_stockmovement (item_id);
INSERT INTO inventory_inventoryitem (sku, quantity) SELECT 'SKU-' || n, n FROM generate_series(1, 20) n;
INSERT INTO inventory_stockmovement (item_id, type, qty_base, note)
  SELECT 1 + n % 20, CASE WHEN n % 3 = 0 THEN 'OUT' ELSE 'IN' END, n % 50, 'movement ' || n
  FROM generate_series(1, 3000) n;
"""

ROWS_DIGEST = r"""
SELECT string_agg(t.relname || '=' || (xpath('/row/d/text()', query_to_xml(format(
  'SELECT count(*) || '':'' || coalesce(md5(string_agg(x::text, E''\n'' ORDER BY x::text)), '''') AS d FROM %I x',
  t.relname), false, true, '')))[1]::text, ' ' ORDER BY t.relname)
FROM pg_stat_user_tables t
"""


@dataclass
class Lab:
    """One test's database, backup directory and settings, and ways to run the script against them."""

    socket_dir: Path
    database: str
    directory: Path
    config_file: Path
    env: dict[str, str]

    @property
    def config(self) -> dict:
        return json.loads(self.config_file.read_text())

    def write_config(self, **changes: object) -> None:
        self.config_file.write_text(json.dumps({**self.config, **changes}))

    def drop_setting(self, key: str) -> None:
        """Rewrite the settings file without `key` (as a role older than the script would have written it)."""
        self.config_file.write_text(json.dumps({k: v for k, v in self.config.items() if k != key}))

    def run(self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
            script: Path = SCRIPT) -> subprocess.CompletedProcess:
        """Run the script (the repository's, or `script`) as the host does; return the finished process."""
        return subprocess.run([sys.executable, str(script), "--config", str(self.config_file), *args],
                              env={**self.env, **(env or {})}, input=stdin, capture_output=True, text=True,
                              check=False)

    def run_json(self, *args: str, **kwargs: object) -> dict:
        done = self.run(*args, **kwargs)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def sql(self, statement: str, database: str | None = None) -> str:
        return sql(self.socket_dir, database or self.database, statement)

    def rows_digest(self, database: str | None = None) -> str:
        """Return every table's row count and a checksum of its ordered rows."""
        return self.sql(ROWS_DIGEST, database)

    def databases(self) -> set[str]:
        return set(self.sql("SELECT datname FROM pg_database").splitlines())

    def files(self) -> set[str]:
        return {p.name for p in self.directory.iterdir() if p.name != LOCK_FILE}


@pytest.fixture
def lab(cluster: Path, tmp_path: Path) -> Iterator[Lab]:
    """A fresh database shaped like Depotix's, an empty backup directory (0700) and the script's settings."""
    database = f"depotix_t{os.getpid()}_{next(_names)}"
    sql(cluster, "postgres", f"CREATE DATABASE {database} OWNER depotix")
    sql(cluster, database, "SET ROLE depotix;" + SCHEMA)
    directory = tmp_path / "backups"
    directory.mkdir(mode=0o700)
    ledger = tmp_path / "releases.json"
    ledger.write_text(json.dumps({"entries": [
        {"release": "1.0", "action": "site", "outcome": "ok"},
        {"release": "2.0", "action": "deploy", "outcome": "ok"},
        {"release": "2.1", "action": "deploy", "outcome": "failed"},
    ]}))
    config_file = tmp_path / "backup.json"
    config_file.write_text(json.dumps({
        "docker": str(FAKE_DOCKER), "container": "server-postgres-1", "database": database, "user": "postgres",
        "owner": "depotix", "directory": str(directory), "prefix": "depotix", "compress": 6, "ledger": str(ledger),
        "jobs": 2, "keep_last": 3, "keep_daily": 7, "keep_weekly": 4, "lock_timeout": 5,
        "offsite_command": "", "offsite_rsync_target": "", "restore_settings": {"synchronous_commit": "off"},
        "lib_dir": str(FILES), "safety_suffix": "before_restore",
        "restore_marker": str(directory / ".restore-in-progress.json"),
    }))
    env = {key: value for key, value in os.environ.items() if not key.startswith("FAKE_DOCKER_")}
    env["FAKE_DOCKER_PGHOST"] = str(cluster)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    yield Lab(cluster, database, directory, config_file, env)
    for name in (database, f"{database}_restoring", f"{database}_drill"):
        sql(cluster, "postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def dumped(lab: Lab) -> Callable[..., dict]:
    """Return a function that takes a dump with the script and returns its result."""
    def take(*args: str) -> dict:
        return lab.run_json("dump", *args)
    return take


def complete_record(name: str, **fields: object) -> dict:
    """Return a record that counts as complete for the dump `name` (no row counts worth comparing)."""
    return {"file": name, "sha256": "0", "created": "2026-01-01T00:00:00+00:00", "tables": {}, "rows": 0,
            "migrations": {}, **fields}


@dataclass
class FakeClock:
    """The script's wall clock (depotix_backup.clock.utc_now), set by the test; None: the real one."""

    at: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        return self.at or dt.datetime.now(dt.timezone.utc)


@dataclass
class InProcess:
    """The package's commands run in this process, against the lab's settings, under the directory's lock."""

    lab: Lab
    clock: FakeClock

    def dump(self, label: str = "2.0", at: dt.datetime | None = None) -> dict:
        from depotix_backup.dump import cmd_dump
        from depotix_backup.files import directory_lock
        self.clock.at = at
        try:
            with directory_lock(self.lab.config):
                return cmd_dump(self.lab.config, label)
        finally:
            self.clock.at = None

    def scheduled(self, at: dt.datetime | None = None) -> dict:
        from depotix_backup.files import directory_lock
        from depotix_backup.schedule import cmd_scheduled
        self.clock.at = at
        try:
            with directory_lock(self.lab.config):
                return cmd_scheduled(self.lab.config)
        finally:
            self.clock.at = None


@pytest.fixture
def inproc(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcess]:
    """Run the package in this process with a clock the test sets (the fake docker's environment set)."""
    import depotix_backup.clock
    fake = FakeClock()
    monkeypatch.setattr(depotix_backup.clock, "utc_now", fake)
    for key, value in lab.env.items():
        if key.startswith("FAKE_DOCKER_"):
            monkeypatch.setenv(key, value)
    umask = os.umask(0o077)
    os.umask(umask)
    try:
        yield InProcess(lab, fake)
    finally:
        os.umask(umask)
