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

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "library"
MODULE_UTILS = REPO / "module_utils"
PROBE = MODULE_UTILS / "django_migration_probe.py"
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

from ansible.module_utils.django_migration_probe import parse_output  # noqa: E402


def fixture_env(db_path: Path, **extra: str) -> Dict[str, str]:
    """Return the environment the fixture project needs, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FIXTURE_", "FAKE_DOCKER_"))}
    env.update(FIXTURE_DB_PATH=str(db_path), PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def run_probe(db_path: Path, request: Dict[str, Any], cwd: Path = FIXTURE_PROJECT, **env: str) -> Dict[str, Any]:
    """Run the probe the way a container does (source on stdin) and return its document."""
    completed = subprocess.run(
        [sys.executable, "-", json.dumps(request)],
        input=PROBE.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        cwd=str(cwd),
        env=fixture_env(db_path, **env),
        timeout=60,
        check=False,
    )
    document = parse_output(completed.stdout)
    assert document is not None, "no result document:\n%s\n%s" % (completed.stdout, completed.stderr)
    return document


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "db_state(name): start from a prepared migration state")
