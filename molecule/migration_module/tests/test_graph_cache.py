"""The migration graph kept per image answers state=query as Django in the image does.

graph_cache.yml asked every lab release image, in three database states (as left,
with a planted ghost, inventory back to 0005), once through the probe
(Django started in a one-off container) and once from the graph kept for the image
plus django_migrations; both answers are in /root/graph_cache_results.json.
"""

from __future__ import annotations

import pytest
from depotix_checks import recorded

RELEASES = ["1.0", "2.0", "2.0-broken", "2.1", "1.1-irreversible"]
STATES = ["as_left", "ghost", "partial"]
GHOST = "0999_planted_for_the_graph_cache"


@pytest.fixture(scope="module")
def results(host) -> dict:
    return recorded(host, "graph_cache_results")


def pair(results: dict, state: str, release: str) -> dict:
    found = [p for p in results["pairs"] if p["state"] == state and p["image"].endswith(":" + release)]
    assert len(found) == 1, (state, release, [(p["state"], p["image"]) for p in results["pairs"]])
    return found[0]


def test_the_first_query_of_each_image_kept_its_graph(results: dict) -> None:
    assert len(results["first"]) == len(RELEASES)
    for report in results["first"]:
        assert report["used"] is False and report["reason"].startswith("no graph kept yet"), report
        assert report["written"] is True and report["path"].startswith("/root/migration-graphs/"), report


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("release", RELEASES)
def test_the_graph_kept_answers_as_the_probe(results: dict, state: str, release: str) -> None:
    found = pair(results, state, release)
    assert found["probe_source"] == "probe"
    assert found["cached_source"] == "cache", found["reason"]
    assert found["cached"] == found["probe"]


def test_the_states_compared_hold_applied_unapplied_and_ghost_migrations(results: dict) -> None:
    inventory = {state: pair(results, state, "2.0")["probe"]["inventory"] for state in STATES}
    assert inventory["as_left"]["unapplied"] == [] and inventory["as_left"]["ghosts"] == []
    assert inventory["ghost"]["ghosts"] == [GHOST]
    assert inventory["partial"]["applied"][-1].startswith("0005") and inventory["partial"]["unapplied"]
    # To the 1.0 image, 2.0's 0008 is a ghost while it is applied.
    assert pair(results, "as_left", "1.0")["probe"]["inventory"]["ghosts"] == ["0008_add_idempotency_and_constraints"]


def test_each_graph_is_kept_for_root_only(host) -> None:
    directory = host.file("/root/migration-graphs")
    assert directory.is_directory and directory.mode == 0o700
    files = host.check_output("find /root/migration-graphs -name '*.json' -printf '%m %f\\n'").splitlines()
    assert len(files) == len(RELEASES) and all(line.startswith("600 ") for line in files)
