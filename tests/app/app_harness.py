"""What the reference API's tests run against: a real PostgreSQL, real release trees, a real gunicorn.

- `PostgresCluster`: a throwaway cluster from Debian's binaries, in a temp dir, on a free
  port, run as the `postgres` user when the tests run as root.
- `DatabaseServer`: creates and clones databases on that cluster, or on the server named
  by DEPOTIX_TEST_DATABASE_URL, and runs SQL for assertions.
- `assemble_release`: a release's source tree, built by lab/api/apply-release.sh exactly
  as the image build does.
- `run_manage`, `ApiServer`, `ApiClient`: manage.py in a subprocess, gunicorn with the
  image's gunicorn.conf.py, and an HTTP client that returns errors instead of raising.
"""

from __future__ import annotations

import enum
import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg

REPO_ROOT = Path(__file__).resolve().parents[2]
API_DIR = REPO_ROOT / "lab" / "api"
APPLY_RELEASE = API_DIR / "apply-release.sh"
EXTERNAL_DATABASE_ENV = "DEPOTIX_TEST_DATABASE_URL"
APP_ROLE = "depotix_app"

ReleaseTree = Callable[[str], Path]
"""Returns the assembled source tree of a release (a session fixture)."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bindir() -> Path:
    """Return the newest installed PostgreSQL server's bin directory."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError(
        "no PostgreSQL server binaries (initdb): install Debian's 'postgresql' package, "
        f"or set {EXTERNAL_DATABASE_ENV} to a server the tests may create databases on"
    )


def with_database(url: str, name: str, user: str | None = None, password: str | None = None) -> str:
    """Return the URL with another database name (and optionally other credentials)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        netloc = f"{credentials}@{netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, "/" + name, parts.query, ""))


class PostgresCluster:
    """A PostgreSQL cluster that exists for one test session."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.port = free_port()
        self.password = secrets.token_urlsafe(18)
        self.base = Path(tempfile.mkdtemp(prefix="depotix-test-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres:{quote(self.password, safe='')}@127.0.0.1:{self.port}/postgres"

    def as_postgres_user(self, *command: str) -> list[str]:
        """Return the command run as the `postgres` user when we are root (postgres refuses root)."""
        if os.geteuid() != 0:
            return list(command)
        return ["runuser", "-u", "postgres", "--", *command]

    def run(self, *command: str) -> None:
        result = subprocess.run(self.as_postgres_user(*command), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {result.stdout}{result.stderr}{log[-2000:]}")

    def start(self) -> None:
        password_file = self.base / "superuser-password"
        password_file.write_text(self.password)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (self.base, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self.run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        password_file.unlink()
        # Durability buys nothing in a throwaway cluster and costs seconds per test run.
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "60",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self.run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class Database:
    """One database the tests created, and the URL the app connects with."""

    server: DatabaseServer
    name: str
    url: str

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.server.conninfo(self.name), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with psycopg.connect(self.server.conninfo(self.name), autocommit=True) as conn:
            conn.execute(sql, params)  # type: ignore[arg-type]

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """Yield a connection inside a transaction, committed when the block ends cleanly."""
        with psycopg.connect(self.server.conninfo(self.name)) as conn:
            yield conn


@dataclass
class DatabaseServer:
    """Creates databases for the tests on one server, as an admin role; the app uses APP_ROLE."""

    admin_url: str
    app_user: str
    app_password: str
    created: list[str] = field(default_factory=list)

    def conninfo(self, database: str) -> str:
        return with_database(self.admin_url, database)

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.conninfo(self.admin_database), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    @property
    def admin_database(self) -> str:
        return urlsplit(self.admin_url).path.lstrip("/") or "postgres"

    def create_database(self, purpose: str, template: str | None = None) -> Database:
        """Create an empty database (or a copy of template) owned by the app role."""
        name = f"depotix_t_{purpose}_{secrets.token_hex(3)}"
        clause = f" TEMPLATE {template}" if template else ""
        self.admin(f'CREATE DATABASE "{name}" OWNER "{self.app_user}"{clause}')
        self.created.append(name)
        url = with_database(self.admin_url, name, self.app_user, self.app_password)
        return Database(self, name, url)

    def drop_created(self) -> None:
        for name in reversed(self.created):
            self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()

    @classmethod
    def on_cluster(cls, cluster: PostgresCluster) -> DatabaseServer:
        """Use the throwaway cluster, with a non-superuser app role as in production."""
        password = secrets.token_urlsafe(18)
        server = cls(cluster.admin_url, APP_ROLE, password)
        server.admin(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{password}'")
        return server

    @classmethod
    def external(cls, url: str) -> DatabaseServer:
        """Use an existing server; its role must be allowed to create databases."""
        parts = urlsplit(url)
        return cls(url, unquote(parts.username or "postgres"), unquote(parts.password or ""))


def assemble_release(release: str, dest: Path) -> Path:
    """Build the source tree of a release with the same script the Dockerfile uses."""
    subprocess.run([str(APPLY_RELEASE), release, str(dest)], check=True, capture_output=True, text=True)
    return dest


def app_environment(database: Database, release: str, secret_key: str, **extra: str) -> dict[str, str]:
    """Return the environment the app gets in its container, and nothing of ours.

    Bytecode may be written: the trees are temporary, and the image ships compiled too.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "DATABASE_URL": database.url,
        "DJANGO_SECRET_KEY": secret_key,
        "DEPOTIX_RELEASE": release,
    }
    env.update(extra)
    return env


def run_manage(
    tree: Path, env: dict[str, str], *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python manage.py ARGS` in a release tree; with check, fail the test on an error."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


@dataclass
class Manage:
    """Runs manage.py of any release against one database."""

    database: Database
    release_tree: ReleaseTree
    secret_key: str

    def env(self, release: str, **extra: str) -> dict[str, str]:
        return app_environment(self.database, release, self.secret_key, **extra)

    def __call__(self, release: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_manage(self.release_tree(release), self.env(release), *args, check=check)


class Auth(enum.Enum):
    """Which token a request sends when the test names none: the client's own."""

    CLIENT_TOKEN = enum.auto()


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


class ApiClient:
    """Speaks JSON to a running API; HTTP errors come back as responses, not exceptions."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | Auth | None = Auth.CLIENT_TOKEN,
    ) -> Response:
        """Send one request; `token=None` sends no Authorization header."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token is Auth.CLIENT_TOKEN:
            token = self.token
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return Response(reply.status, json.loads(reply.read() or b"null"), dict(reply.headers))
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = payload.decode(errors="replace")
            return Response(error.code, parsed, dict(error.headers))

    def post_movement(self, payload: dict[str, Any], **kwargs: Any) -> Response:
        return self.request("POST", "/api/inventory/stock-movements/", payload, **kwargs)


class ApiServer:
    """gunicorn serving a release tree with the image's gunicorn.conf.py, bound to 127.0.0.1."""

    def __init__(self, tree: Path, env: dict[str, str], log_path: Path) -> None:
        self.tree = tree
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "depotix_api.wsgi:application"],
                cwd=self.tree,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_answering(self, timeout: float = 30) -> None:
        """Return once /healthz gets any HTTP answer; fail with the server log if it dies."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                urllib.request.urlopen(self.base_url + "/healthz", timeout=5).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {timeout}s:\n{self.log()}")

    def wait_for_exit(self, timeout: float) -> int | None:
        """Return gunicorn's exit code, or None if it is still running after timeout."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class LiveApi:
    """A running API server, a client holding a valid token, and the server's database."""

    server: ApiServer
    client: ApiClient
    database: Database

    def new_item(self, quantity: int) -> int:
        """Create an item with a unique SKU directly in the database; return its id."""
        return self.database.value(
            "INSERT INTO inventory_inventoryitem (name, sku, quantity, updated_at) "
            "VALUES ('test item', %s, %s, now()) RETURNING id",
            (f"T-{uuid.uuid4().hex[:12]}", quantity),
        )

    def quantity(self, item_id: int) -> int:
        return self.database.value("SELECT quantity FROM inventory_inventoryitem WHERE id = %s", (item_id,))

    def movement_count(self, item_id: int | None = None) -> int:
        if item_id is None:
            return self.database.value("SELECT count(*) FROM inventory_stockmovement")
        return self.database.value("SELECT count(*) FROM inventory_stockmovement WHERE item_id = %s", (item_id,))

    def queries_waiting_for_locks(self, count: int, timeout: float = 10) -> list[str]:
        """Return the SQL of `count` API backends once they all wait for a lock, or fail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = self.database.query(
                "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if len(waiting) >= count:
                return [query for (query,) in waiting]
            time.sleep(0.05)
        raise AssertionError(f"expected {count} API request(s) waiting for a lock; they never were")


DatabaseAt = Callable[[str], Database]
"""Returns a new database migrated to the given release (a fixture)."""
ManageFactory = Callable[[Database], Manage]
"""Returns a manage.py runner bound to a database (a fixture)."""
