"""Shared fixtures for the django_migration unit tests.

The probe always runs in a subprocess, as it does in a container: Django is
never set up inside the pytest process, which other test suites share.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import ansible.module_utils
import pytest
from ansible.module_utils.testing import patch_module_args

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "library"
MODULE_UTILS = REPO / "module_utils"
PROBE = MODULE_UTILS / "django_migration_probe.py"
PROTOCOL = MODULE_UTILS / "django_migration_protocol.py"
FIXTURE_PROJECT = Path(__file__).resolve().parent / "fixtures" / "djproject"
FAKE_DOCKER = Path(__file__).resolve().parent / "support" / "fake_docker.py"

SHOP = [
    "0001_initial",
    "0002_item_sku",
    "0003_item_price",
    "0004_clamp_negative_quantities",
    "0005_item_quantity_index",
]
BILLING = ["0001_initial", "0002_invoice_note"]

# Custom module_utils are imported as ansible.module_utils.<name>, as ansible.cfg's module_utils makes them.
if str(MODULE_UTILS) not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(MODULE_UTILS))
if str(LIBRARY) not in sys.path:
    sys.path.insert(0, str(LIBRARY))

import django_migration  # noqa: E402
from ansible.module_utils.django_migration_docker import container_program  # noqa: E402
from ansible.module_utils.django_migration_protocol import parse_output  # noqa: E402


def fixture_env(db_path: Path, **extra: str) -> Dict[str, str]:
    """Return the environment the fixture project needs, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FIXTURE_", "FAKE_DOCKER_"))}
    env.update(FIXTURE_DB_PATH=str(db_path), PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def run_program(db_path: Path, request: Dict[str, Any], program: str, cwd: Path = FIXTURE_PROJECT,
                timeout: int = 60, **env: str) -> Dict[str, Any]:
    """Run a container program (``python -`` with the request as argument) and return its result document."""
    completed = subprocess.run(
        [sys.executable, "-", json.dumps(request)],
        input=program,
        capture_output=True,
        text=True,
        cwd=str(cwd),
        env=fixture_env(db_path, **env),
        timeout=timeout,
        check=False,
    )
    document = parse_output(completed.stdout)
    assert document is not None, "no result document:\n%s\n%s" % (completed.stdout, completed.stderr)
    return document


def run_probe(db_path: Path, request: Dict[str, Any], cwd: Path = FIXTURE_PROJECT, **env: str) -> Dict[str, Any]:
    """Run the probe the way a container does (the module's container program on stdin) and return its document."""
    return run_program(db_path, request, container_program(), cwd, **env)


def run_patched_probe(
    db_path: Path, request: Dict[str, Any], patch: str, cwd: Path = FIXTURE_PROJECT, **env: str
) -> Dict[str, Any]:
    """Run the probe as run_probe does, with ``patch`` run in the probe's namespace just before its main().

    The patch replaces probe functions by name (the probe looks them up as globals), to make
    timers strike at chosen moments.
    """
    source = PROBE.read_text(encoding="utf-8")
    guard = '\nif __name__ == "__main__":\n'
    assert source.count(guard) == 1
    head = source[: source.index(guard)]
    program = container_program(probe_source=head + "\n" + patch + "\nsys.exit(main())\n")
    assert program != container_program()
    return run_program(db_path, request, program, cwd, timeout=90, **env)


def execute(db_path: Path, sql: str, rows: List[tuple]) -> None:
    """Run one statement per row on the SQLite database (test data)."""
    with sqlite3.connect(str(db_path)) as connection:
        connection.executemany(sql, rows)


def applied_rows(db_path: Path, app: Optional[str] = None) -> List[str]:
    """Return the django_migrations rows as app.name, straight from the database."""
    if not db_path.exists():
        return []
    with sqlite3.connect(str(db_path)) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE name = 'django_migrations'").fetchall()
        if not tables:
            return []
        rows = connection.execute("SELECT app, name FROM django_migrations ORDER BY id").fetchall()
    return ["%s.%s" % row for row in rows if app in (None, row[0])]


def record_ghost(db_path: Path, app: str, name: str) -> None:
    """Record a migration as applied that the code does not contain."""
    with sqlite3.connect(str(db_path)) as connection:
        connection.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES (?, ?, '2025-01-01 00:00:00')", (app, name)
        )


# Database states the tests start from, built once per session and copied per test:
# name -> (state it starts from, migrate requests that follow).
STATES = {
    "shop_0003": (None, [("shop", "0003")]),
    "shop_0003_billing_leaf": ("shop_0003", [("billing", None)]),
    "shop_0004_billing_leaf": ("shop_0003_billing_leaf", [("shop", "0004")]),
    "all_leaf": (None, [(None, None)]),
}


@pytest.fixture(scope="session")
def state_templates(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    directory = tmp_path_factory.mktemp("migration_states")
    templates: Dict[str, Path] = {}
    for name, (base, steps) in STATES.items():
        path = directory / ("%s.sqlite3" % name)
        if base:
            shutil.copyfile(templates[base], path)
        for app, target in steps:
            document = run_probe(path, {"action": "migrate", "app": app, "target": target})
            assert document["ok"], document
        templates[name] = path
    return templates


@pytest.fixture(scope="session")
def module_docs() -> Dict[str, Any]:
    """Both modules' documentation as ``ansible-doc -j`` renders it, from one ansible-doc run."""
    completed = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-doc")),
            "-M",
            str(LIBRARY),
            "-j",
            "django_migration",
            "release_ledger",
        ],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0"),
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.fixture(scope="session")
def docker_cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An executable that runs the fake docker CLI with this interpreter (no PATH lookup, no shims)."""
    path = tmp_path_factory.mktemp("bin") / "docker"
    path.write_text(
        "#!%s\nimport runpy\nrunpy.run_path(%r, run_name='__main__')\n" % (sys.executable, str(FAKE_DOCKER))
    )
    path.chmod(0o755)
    return path


@pytest.fixture
def database(tmp_path: Path, state_templates: Dict[str, Path], request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh SQLite database, in the state named by the test's ``db_state`` mark (empty without one)."""
    path = tmp_path / "db.sqlite3"
    marker = request.node.get_closest_marker("db_state")
    if marker:
        shutil.copyfile(state_templates[marker.args[0]], path)
    yield path


ENV_FILE_ONLY_VALUE = "value-known-only-to-the-env-file-4711"


class DockerHost:
    """The fake docker host's configuration and call log."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, templates: Dict[str, Path]) -> None:
        self.templates = templates
        self.log = tmp_path / "docker-calls.jsonl"
        self.db = tmp_path / "db.sqlite3"
        self.env_file = tmp_path / "api.env"
        self.env_file.write_text("FIXTURE_DB_PATH=%s\nDATABASE_PASSWORD=%s\n" % (self.db, ENV_FILE_ONLY_VALUE))
        self.monkeypatch = monkeypatch
        for name, value in {
            "FAKE_DOCKER_LOG": str(self.log),
            "FAKE_DOCKER_CONTAINERS": "api=running,old=exited",
            "FAKE_DOCKER_IMAGES": "fixture/api:2.0",
            "FAKE_DOCKER_PYTHON": sys.executable,
            "FAKE_DOCKER_PROJECT": str(FIXTURE_PROJECT),
            "FIXTURE_DB_PATH": str(self.db),
            "PYTHONDONTWRITEBYTECODE": "1",
        }.items():
            monkeypatch.setenv(name, value)
        for name in (
            "FIXTURE_FAIL_MIGRATION",
            "FIXTURE_SLOW_MIGRATION",
            "FIXTURE_STUCK",
            "FIXTURE_NOISY",
            "FAKE_DOCKER_HANG",
            "FAKE_DOCKER_DAEMON_DOWN",
        ):
            monkeypatch.delenv(name, raising=False)

    def start_from(self, state: str) -> None:
        """Start from a prepared migration state (see conftest.STATES)."""
        shutil.copyfile(self.templates[state], self.db)

    def calls(self) -> List[List[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commands(self) -> List[str]:
        return [call[0] for call in self.calls()]


@pytest.fixture
def host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_templates: Dict[str, Path], docker_cli: Path
) -> DockerHost:
    # run_module's default docker_cli; an environment variable so monkeypatch undoes it.
    monkeypatch.setenv("TEST_DOCKER_CLI", str(docker_cli))
    return DockerHost(tmp_path, monkeypatch, state_templates)


def run_module(capsys: pytest.CaptureFixture, check_mode: bool = False, diff: bool = False, **args: Any) -> Dict:
    """Run django_migration in-process with ``args``; return its JSON result (``failed`` set on fail_json)."""
    args.setdefault("docker_cli", os.environ["TEST_DOCKER_CLI"])
    args.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(SystemExit):
        django_migration.main()
    return json.loads(capsys.readouterr().out)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "db_state(name): start from a prepared migration state")
