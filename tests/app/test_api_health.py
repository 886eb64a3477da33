"""GET /healthz, and how each release's server starts (or, for 2.0-broken, does not)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app_harness import (
    ApiClient,
    ApiServer,
    Database,
    DatabaseAt,
    DatabaseServer,
    LiveApi,
    ReleaseTree,
    app_environment,
    free_port,
    with_database,
)


def test_healthz_is_200_with_release_and_database_state(live_api: LiveApi) -> None:
    response = live_api.client.request("GET", "/healthz", token=None)

    assert response.status == 200
    assert response.body == {"ok": True, "release": "2.0", "database": True}


def test_healthz_answers_under_any_host_header_while_the_api_checks_it(live_api: LiveApi) -> None:
    """Probes use whatever Host they have; the API itself still refuses unknown hosts."""
    foreign_host = {"Host": "probe.internal.example"}

    health = live_api.client.request("GET", "/healthz", token=None, headers=foreign_host)
    api = live_api.client.request("GET", "/api/inventory/items/", headers=foreign_host)

    assert health.status == 200
    assert api.status == 400
    assert "DJANGO_ALLOWED_HOSTS" in api.body["error"]


@pytest.fixture
def server_without_database(
    db_server: DatabaseServer, release_tree: ReleaseTree, secret_key: str, tmp_path: Path
) -> Iterator[ApiServer]:
    """Release 1.0 whose DATABASE_URL points at a port nothing listens on."""
    nowhere = Database(
        db_server, "depotix", with_database(f"postgres://depotix@127.0.0.1:{free_port()}/x", "depotix")
    )
    server = ApiServer(release_tree("1.0"), app_environment(nowhere, "1.0", secret_key), tmp_path / "gunicorn.log")
    server.start()
    try:
        server.wait_until_answering()
        yield server
    finally:
        server.stop()


def test_healthz_is_503_when_the_database_does_not_answer(server_without_database: ApiServer) -> None:
    response = ApiClient(server_without_database.base_url, None).request("GET", "/healthz")

    assert response.status == 503
    assert response.body == {"ok": False, "release": "1.0", "database": False}


def test_2_0_broken_server_exits_at_start(
    database_at: DatabaseAt, release_tree: ReleaseTree, secret_key: str, tmp_path: Path
) -> None:
    database = database_at("2.0")
    server = ApiServer(
        release_tree("2.0-broken"), app_environment(database, "2.0-broken", secret_key), tmp_path / "log"
    )
    server.start()
    try:
        exit_code = server.wait_for_exit(timeout=30)
    finally:
        server.stop()

    assert exit_code not in (None, 0), "gunicorn kept running"
    assert "No module named 'depotix_api.request_metrics'" in server.log()


def app_sessions(database: Database) -> set[int]:
    """Return the backend pids of the app's own connections to its database."""
    rows = database.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND usename = %s"
        " AND pid <> pg_backend_pid()",
        (database.server.app_user,),
    )
    return {pid for (pid,) in rows}


def test_workers_keep_their_connection_and_replace_one_the_server_ended(live_api: LiveApi) -> None:
    def probe_all() -> list[int]:
        return [live_api.client.request("GET", "/healthz", token=None).status for _ in range(8)]

    assert probe_all() == [200] * 8
    kept = app_sessions(live_api.database)
    assert probe_all() == [200] * 8
    assert kept and app_sessions(live_api.database) == kept, "a request opened a new connection"

    live_api.database.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(%s)", (list(kept),)
    )

    assert probe_all() == [200] * 8, "a request failed on a connection the server had ended"
    replaced = app_sessions(live_api.database)
    assert replaced and not replaced & kept
