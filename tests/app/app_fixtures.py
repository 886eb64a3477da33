"""Session fixtures shared by the suites that run the reference API on a real PostgreSQL (tests/app, tests/rollback).

Each suite's conftest imports them by name, so pytest finds them there.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app_harness import (
    EXTERNAL_DATABASE_ENV,
    DatabaseServer,
    Manage,
    PostgresCluster,
    ReleaseTree,
    assemble_release,
)


@pytest.fixture(scope="session")
def db_server() -> Iterator[DatabaseServer]:
    """The PostgreSQL server every test creates its databases on."""
    external = os.environ.get(EXTERNAL_DATABASE_ENV)
    if external:
        server = DatabaseServer.external(external)
        yield server
        server.drop_created()
        return
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield DatabaseServer.on_cluster(cluster)
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def secret_key() -> str:
    return secrets.token_urlsafe(40)


@pytest.fixture(scope="session")
def release_tree(tmp_path_factory: pytest.TempPathFactory) -> ReleaseTree:
    """Return the assembled source tree of a release (built once per session)."""
    trees: dict[str, Path] = {}

    def tree(release: str) -> Path:
        if release not in trees:
            trees[release] = assemble_release(release, tmp_path_factory.mktemp("release") / release)
        return trees[release]

    return tree


@pytest.fixture(scope="session")
def migrated_template(db_server: DatabaseServer, release_tree: ReleaseTree, secret_key: str) -> Callable[[str], str]:
    """Return the name of a database fully migrated to a release, to clone tests' databases from."""
    templates: dict[str, str] = {}

    def template(release: str) -> str:
        if release not in templates:
            database = db_server.create_database("template")
            Manage(database, release_tree, secret_key)(release, "migrate", "--no-input")
            templates[release] = database.name
        return templates[release]

    return template
