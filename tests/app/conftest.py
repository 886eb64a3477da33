"""Fixtures of the reference API's tests: `pytest tests/app` runs them on their own.

One PostgreSQL per session (a throwaway cluster, or DEPOTIX_TEST_DATABASE_URL), one
assembled tree per release, one database migrated per release to clone from, and live
gunicorn servers of release 2.0 with idempotency on and off.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The harness sits beside this file; make it importable under any pytest import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_harness import (
    EXTERNAL_DATABASE_ENV,
    ApiClient,
    ApiServer,
    Database,
    DatabaseAt,
    DatabaseServer,
    LiveApi,
    Manage,
    ManageFactory,
    PostgresCluster,
    ReleaseTree,
    app_environment,
    assemble_release,
    run_manage,
    with_database,
)

API_USER = "lab-client"


from app_fixtures import db_server, migrated_template, release_tree, secret_key  # noqa: E402,F401


@pytest.fixture
def database_at(db_server: DatabaseServer, migrated_template: Callable[[str], str]) -> DatabaseAt:
    """Return a new database already migrated to the given release."""

    def create(release: str) -> Database:
        return db_server.create_database("test", template=migrated_template(release))

    return create


@pytest.fixture
def manage_factory(release_tree: ReleaseTree, secret_key: str) -> ManageFactory:
    """Return a factory of manage.py runners, each bound to one database."""

    def factory(database: Database) -> Manage:
        return Manage(database, release_tree, secret_key)

    return factory


def start_live_api(
    database: Database, tree: Path, release: str, secret_key: str, log_dir: Path, **env: str
) -> Iterator[LiveApi]:
    """Create the API token with the lab's command, start gunicorn, yield, stop it.

    The password reaches the app through DATABASE_PASSWORD_FILE, as in the containers.
    """
    password_file = log_dir / "database-password"
    password_file.write_text(database.server.app_password + "\n")
    app_env = app_environment(
        database,
        release,
        secret_key,
        DATABASE_URL=with_database(database.url, database.name, database.server.app_user),
        DATABASE_PASSWORD_FILE=str(password_file),
        **env,
    )
    token_file = log_dir / "api-token"
    run_manage(tree, app_env, "create_api_token", API_USER, "--output", str(token_file))
    server = ApiServer(tree, app_env, log_dir / "gunicorn.log")
    server.start()
    try:
        server.wait_until_answering()
        yield LiveApi(server, ApiClient(server.base_url, token_file.read_text().strip()), database)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def live_api(
    db_server: DatabaseServer,
    migrated_template: Callable[[str], str],
    release_tree: ReleaseTree,
    secret_key: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveApi]:
    """Release 2.0 served by gunicorn with IDEMPOTENCY_ENABLED on (the default)."""
    database = db_server.create_database("live", template=migrated_template("2.0"))
    yield from start_live_api(database, release_tree("2.0"), "2.0", secret_key, tmp_path_factory.mktemp("live"))


@pytest.fixture(scope="session")
def live_api_idempotency_off(
    db_server: DatabaseServer,
    migrated_template: Callable[[str], str],
    release_tree: ReleaseTree,
    secret_key: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveApi]:
    """Release 2.0 with IDEMPOTENCY_ENABLED=false, as after runbook scenario 3's switch."""
    database = db_server.create_database("live_off", template=migrated_template("2.0"))
    yield from start_live_api(
        database,
        release_tree("2.0"),
        "2.0",
        secret_key,
        tmp_path_factory.mktemp("live-off"),
        IDEMPOTENCY_ENABLED="false",
    )
