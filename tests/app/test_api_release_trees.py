"""lab/api/apply-release.sh: each release is app/ plus small overlays, assembled the same way everywhere."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

from app_harness import API_DIR, APPLY_RELEASE, ReleaseTree


def differing_files(left: Path, right: Path) -> set[str]:
    """Return paths (relative) that exist in only one tree or differ in content."""
    found: set[str] = set()

    def walk(comparison: filecmp.dircmp[str], prefix: str) -> None:
        for name in comparison.left_only + comparison.right_only + comparison.diff_files:
            found.add(prefix + name)
        for name, sub in comparison.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(left, right, ignore=["__pycache__"]), "")
    return found


def test_release_1_0_is_the_app_directory_itself(release_tree: ReleaseTree) -> None:
    assert differing_files(API_DIR / "app", release_tree("1.0")) == set()


def test_2_0_broken_differs_from_2_0_only_in_its_wsgi_entry_point(release_tree: ReleaseTree) -> None:
    assert differing_files(release_tree("2.0"), release_tree("2.0-broken")) == {"depotix_api/wsgi.py"}


def test_2_1_differs_from_2_0_only_in_models_and_migration_0009(release_tree: ReleaseTree) -> None:
    assert differing_files(release_tree("2.0"), release_tree("2.1")) == {
        "inventory/models.py",
        "inventory/migrations/0009_inventoryitem_location.py",
    }


def test_each_release_ships_exactly_its_migrations(release_tree: ReleaseTree) -> None:
    def leaf(release: str) -> str:
        return max(path.stem for path in (release_tree(release) / "inventory" / "migrations").glob("0*.py"))

    assert leaf("1.0") == "0007_populate_customer_numbers"
    assert leaf("2.0") == "0008_add_idempotency_and_constraints"
    assert leaf("2.0-broken") == "0008_add_idempotency_and_constraints"
    assert leaf("2.1") == "0009_inventoryitem_location"


def test_unknown_release_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(APPLY_RELEASE), "9.9", str(tmp_path / "tree")], capture_output=True, text=True, check=False
    )

    assert result.returncode != 0
    assert "unknown release '9.9'" in result.stderr
    assert all(release in result.stderr for release in ("1.0", "2.0", "2.0-broken", "2.1"))
    assert not (tmp_path / "tree").exists()


def test_a_non_empty_destination_is_refused(tmp_path: Path) -> None:
    (tmp_path / "leftover.py").write_text("")

    result = subprocess.run([str(APPLY_RELEASE), "2.0", str(tmp_path)], capture_output=True, text=True, check=False)

    assert result.returncode != 0
    assert "is not empty" in result.stderr
