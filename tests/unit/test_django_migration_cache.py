"""The migration graph kept per image (graph_cache): a query without Django that answers as the probe does.

Every test runs the module end to end on the fake docker host: the probe really starts
Django on the fixture project (SQLite), and the cached path reads ``django_migrations``
through the fake database container's ``psql`` (the same SQLite file).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any, Dict

import pytest
from ansible.module_utils.django_migration_cache import GraphCache
from ansible.module_utils.django_migration_protocol import GRAPH_FORMAT, state_from_graph
from conftest import DockerHost, record_ghost, run_module

IMAGE = "fixture/api:2.0"


@pytest.fixture
def cached(host: DockerHost, tmp_path: Path) -> Dict[str, Any]:
    """The module's arguments for a query with a graph cache, on a host where api runs IMAGE."""
    host.monkeypatch.setenv("FAKE_DOCKER_CONTAINERS", "api=running,db=running")
    host.monkeypatch.setenv("FAKE_DOCKER_CONTAINER_IMAGES", "api=%s" % IMAGE)
    host.monkeypatch.setenv("FAKE_DOCKER_IMAGES", "%s,fixture/api:1.0" % IMAGE)
    return {
        "container": "api",
        "image": IMAGE,
        "graph_cache": str(tmp_path / "graphs"),
        "database_container": "db",
        "database_name": "depotix",
    }


def probe_answer(capsys: pytest.CaptureFixture, host: DockerHost) -> Dict[str, Any]:
    """The state as the probe reads it, without any cache."""
    result = run_module(capsys, container="api")
    assert result["source"] == "probe" and "graph_cache" not in result
    return result["apps"]


def graph_files(cached_args: Dict[str, Any]) -> list:
    directory = Path(cached_args["graph_cache"])
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


@pytest.mark.parametrize(("state", "ghost"), [
    (None, False),  # no django_migrations table yet
    ("shop_0003", False),  # partly applied, billing not at all
    ("shop_0004_billing_leaf", False),  # partly applied, billing at its leaf
    ("all_leaf", False),
    ("shop_0004_billing_leaf", True),  # with a migration the code does not have
], ids=["empty", "shop_0003", "shop_0004_billing_leaf", "all_leaf", "ghost"])
def test_the_cached_answer_is_the_probes_in_every_state(
    capsys: pytest.CaptureFixture, host: DockerHost, cached: Dict[str, Any], state: Any, ghost: bool
) -> None:
    if state:
        host.start_from(state)
    if ghost:
        record_ghost(host.db, "shop", "0099_from_a_newer_release")
    expected = probe_answer(capsys, host)

    first = run_module(capsys, **cached)
    assert first["source"] == "probe"
    assert first["graph_cache"]["written"] is True and first["graph_cache"]["reason"].startswith("no graph kept yet")
    assert first["apps"] == expected

    calls_before = len(host.calls())
    second = run_module(capsys, **cached)
    assert second["source"] == "cache" and second["runner"]["kind"] == "cache"
    assert second["apps"] == expected
    assert second["django_version"] == first["django_version"]
    # No Django started: one inspect of the container's image, one psql read (at the same time).
    commands = [call[:2] for call in host.calls()[calls_before:]]
    assert sorted(commands) == [["exec", "db"], ["inspect", "--type"]]
    if ghost:
        assert second["apps"]["shop"]["ghosts"] == ["0099_from_a_newer_release"]


def test_the_graph_is_kept_for_the_owner_only_under_the_image_id(
    capsys: pytest.CaptureFixture, host: DockerHost, cached: Dict[str, Any]
) -> None:
    first = run_module(capsys, **cached)
    path = Path(first["graph_cache"]["path"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    kept = json.loads(path.read_text())
    assert kept["image_id"].endswith(path.stem) and kept["graph"]["format"] == GRAPH_FORMAT
    assert kept["graph"]["apps"]["shop"]["order"][:2] == ["0001_initial", "0002_item_sku"]


def test_a_torn_graph_is_not_believed_and_is_written_again(
    capsys: pytest.CaptureFixture, host: DockerHost, cached: Dict[str, Any]
) -> None:
    host.start_from("shop_0003")
    path = Path(run_module(capsys, **cached)["graph_cache"]["path"])
    path.write_text('{"image_id": "sha256:')
    result = run_module(capsys, **cached)
    assert result["source"] == "probe" and "cannot be read" in result["graph_cache"]["reason"]
    assert result["graph_cache"]["written"] is True
    assert run_module(capsys, **cached)["source"] == "cache"


def test_a_graph_of_another_image_is_not_used(
    capsys: pytest.CaptureFixture, host: DockerHost, cached: Dict[str, Any]
) -> None:
    path = Path(run_module(capsys, **cached)["graph_cache"]["path"])
    # The container now runs another image: its graph is not the one kept.
    host.monkeypatch.setenv("FAKE_DOCKER_CONTAINER_IMAGES", "api=fixture/api:1.0")
    result = run_module(capsys, **cached)
    assert result["source"] == "probe" and result["graph_cache"]["reason"].startswith("no graph kept yet")
    assert result["graph_cache"]["path"] != str(path) and len(graph_files(cached)) == 2
    # A file renamed to another image's name is refused too.
    other = Path(result["graph_cache"]["path"])
    other.write_text(path.read_text())
    result = run_module(capsys, **cached)
    assert result["source"] == "probe" and "another image" in result["graph_cache"]["reason"]


def test_a_database_container_that_is_down_leaves_the_answer_to_the_probe(
    capsys: pytest.CaptureFixture, host: DockerHost, cached: Dict[str, Any]
) -> None:
    host.start_from("shop_0003")
    run_module(capsys, **cached)
    host.monkeypatch.setenv("FAKE_DOCKER_CONTAINERS", "api=running,db=exited")
    result = run_module(capsys, **cached)
    assert result["source"] == "probe"
    assert "django_migrations could not be read through db" in result["graph_cache"]["reason"]
    assert result["apps"]["shop"]["applied"][-1] == "0003_item_price"


def test_graphs_of_images_gone_from_the_host_are_removed_when_one_is_written(
    capsys: pytest.CaptureFixture, host: DockerHost, cached: Dict[str, Any]
) -> None:
    directory = Path(cached["graph_cache"])
    directory.mkdir(mode=0o700)
    (directory / ("0" * 64 + ".json")).write_text("{}")
    result = run_module(capsys, **cached)
    assert result["graph_cache"]["removed"] == ["0" * 64 + ".json"]
    assert graph_files(cached) == [Path(result["graph_cache"]["path"]).name]


def test_plans_and_migrations_run_django_and_keep_the_graph(
    capsys: pytest.CaptureFixture, host: DockerHost, cached: Dict[str, Any]
) -> None:
    result = run_module(capsys, **dict(cached, state="migrated", app="shop", target="0003"))
    assert result["changed"] is True and result["source"] == "probe" and result["graph_cache"]["written"] is True
    query = run_module(capsys, **cached)
    assert query["source"] == "cache" and query["apps"]["shop"]["applied"][-1] == "0003_item_price"


def test_a_cache_needs_the_database_container_and_name(capsys: pytest.CaptureFixture, host: DockerHost) -> None:
    result = run_module(capsys, container="api", graph_cache="/tmp/graphs")
    assert result["failed"] is True and "database_container" in result["msg"]
    assert host.calls() == []


def test_squashed_projects_are_never_kept(tmp_path: Path) -> None:
    cache = GraphCache(client=None, directory=str(tmp_path / "graphs"), database=None)  # type: ignore[arg-type]
    graph = {"format": GRAPH_FORMAT, "apps": {}, "on_disk": [], "squashed": True}
    assert cache.store("sha256:" + "a" * 64, graph, "5.2") is False
    assert not (tmp_path / "graphs").exists()


def test_state_from_graph_puts_unknown_apps_and_ghosts_where_the_probe_does() -> None:
    graph = {
        "format": GRAPH_FORMAT,
        "apps": {"shop": {"order": ["0001_initial", "0002_b"], "leaf": ["0002_b"]}},
        "on_disk": [["shop", "0001_initial"], ["shop", "0002_b"]],
    }
    state = state_from_graph(graph, [("shop", "0001_initial"), ("shop", "0009_x"), ("gone", "0001_initial")])
    assert state == {
        "gone": {"applied": [], "unapplied": [], "leaf": [], "ghosts": ["0001_initial"]},
        "shop": {"applied": ["0001_initial"], "unapplied": ["0002_b"], "leaf": ["0002_b"], "ghosts": ["0009_x"]},
    }


def test_a_migrate_to_the_leaves_with_nothing_to_do_is_answered_from_the_graph(
    capsys: pytest.CaptureFixture, host: DockerHost, cached: Dict[str, Any]
) -> None:
    host.start_from("all_leaf")
    first = run_module(capsys, **dict(cached, state="migrated"))
    assert (first["changed"], first["source"]) == (False, "probe")
    calls_before = len(host.calls())
    again = run_module(capsys, diff=True, **dict(cached, state="migrated"))
    assert (again["changed"], again["source"], again["plan"]) == (False, "cache", [])
    assert again["before"] == again["after"] == first["before"] and again["apps"] == first["apps"]
    assert again["diff"]["before"] == again["diff"]["after"]
    assert sorted(call[0] for call in host.calls()[calls_before:]) == ["exec", "inspect"]


def test_a_migrate_with_something_to_do_runs_django(
    capsys: pytest.CaptureFixture, host: DockerHost, cached: Dict[str, Any]
) -> None:
    host.start_from("shop_0003")
    run_module(capsys, **cached)
    result = run_module(capsys, **dict(cached, state="migrated"))
    assert (result["changed"], result["source"]) == (True, "probe")
    assert result["graph_cache"]["reason"] == "app billing is not at its one leaf, so Django plans the migration"
    assert run_module(capsys, **dict(cached, state="migrated"))["source"] == "cache"
