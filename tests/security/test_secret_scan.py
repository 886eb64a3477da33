"""The repository's secret scan (`make lint`: detect-secrets-hook with .secrets.baseline)
fails on a new secret, and its baseline holds only reviewed false positives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, run

BASELINE = ROOT / ".secrets.baseline"


def baseline() -> dict:
    return json.loads(BASELINE.read_text())


def scan(path: Path):
    """Run the scan exactly as `make lint` does, on one file."""
    return run(["detect-secrets-hook", "--baseline", ".secrets.baseline", str(path)])


def fake_aws_access_key() -> str:
    # Assembled at run time, so that this file itself holds no key for the scan to find.
    return "AKIA" + "Q4ZT7XW2MB9PLK3N"


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    path = tmp_path / "settings.py"
    path.write_text(f'AWS_ACCESS_KEY_ID = "{fake_aws_access_key()}"\nREGION = "eu-central-1"\n')
    return path


def test_scan_fails_on_a_planted_aws_access_key(planted):
    result = scan(planted)
    assert result.returncode == 1, result.stdout
    assert "AWS Access Key" in result.stdout
    assert str(planted) in result.stdout


def test_scan_passes_the_same_file_without_the_key(tmp_path):
    clean = tmp_path / "settings.py"
    clean.write_text('AWS_REGION = "eu-central-1"\n')
    result = scan(clean)
    assert result.returncode == 0, result.stdout


def test_baseline_scans_with_the_aws_and_entropy_detectors():
    plugins = {plugin["name"] for plugin in baseline()["plugins_used"]}
    assert {"AWSKeyDetector", "KeywordDetector", "Base64HighEntropyString", "PrivateKeyDetector"} <= plugins


def test_every_baselined_finding_was_reviewed_as_not_a_secret():
    findings = [(path, f["line_number"], f["type"], f.get("is_secret"))
                for path, found in baseline()["results"].items() for f in found]
    assert [f for f in findings if f[3] is not False] == []


def test_baseline_names_only_files_that_exist():
    assert [path for path in baseline()["results"] if not (ROOT / path).is_file()] == []
