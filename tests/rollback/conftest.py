"""Fixtures of the rollback plays' SQL tests: `pytest tests/rollback` runs them on their own.

The database is the real one: a throwaway PostgreSQL cluster (or DEPOTIX_TEST_DATABASE_URL),
migrated with each release's own manage.py, and the API of release 2.0 served by gunicorn
for the writers that go through the app's code. All of that comes from tests/app's
harness; rollback_sql.py beside this file runs the plays' SQL as the plays send it.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# tests/app's harness, and rollback_sql beside this file, importable under any pytest import mode.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_harness import (  # noqa: E402
    EXTERNAL_DATABASE_ENV,
    ApiClient,
    ApiServer,
    Database,
    DatabaseServer,
    LiveApi,
    Manage,
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
def database_at(db_server: DatabaseServer, migrated_template: Callable[[str], str]) -> Callable[[str], Database]:
    """Return a new database already migrated to the given release."""

    def create(release: str) -> Database:
        return db_server.create_database("rollback", template=migrated_template(release))

    return create


@pytest.fixture
def manage_factory(release_tree: ReleaseTree, secret_key: str) -> Callable[[Database], Manage]:
    """Return a factory of manage.py runners, each bound to one database."""

    def factory(database: Database) -> Manage:
        return Manage(database, release_tree, secret_key)

    return factory


@pytest.fixture
def serve_api(release_tree: ReleaseTree, secret_key: str, tmp_path: Path) -> Iterator[Callable[[Database], LiveApi]]:
    """Return a function that serves release 2.0 on a database with gunicorn; stopped when the test ends.

    The app's database password reaches it through DATABASE_PASSWORD_FILE, as in the containers.
    """
    servers: list[ApiServer] = []

    def serve(database: Database) -> LiveApi:
        password_file = tmp_path / "database-password"
        password_file.write_text(database.server.app_password + "\n")
        app_env = app_environment(
            database,
            "2.0",
            secret_key,
            DATABASE_URL=with_database(database.url, database.name, database.server.app_user),
            DATABASE_PASSWORD_FILE=str(password_file),
        )
        token_file = tmp_path / "api-token"
        run_manage(release_tree("2.0"), app_env, "create_api_token", API_USER, "--output", str(token_file))
        server = ApiServer(release_tree("2.0"), app_env, tmp_path / "gunicorn.log")
        servers.append(server)
        server.start()
        server.wait_until_answering()
        return LiveApi(server, ApiClient(server.base_url, token_file.read_text().strip()), database)

    try:
        yield serve
    finally:
        for server in servers:
            server.stop()
