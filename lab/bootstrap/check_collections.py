"""Check that the collections bundled with the ansible package satisfy requirements.yml.

Galaxy cannot be reached from these machines, so instead of downloading we compare the
installed versions against the minimums the project declares, and say which one is short.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version


def required_collections(requirements_file: Path) -> dict[str, str]:
    """Return {collection: version specifier} from an ansible-galaxy requirements file."""
    data = yaml.safe_load(requirements_file.read_text()) or {}
    return {c["name"]: str(c.get("version", "*")) for c in data.get("collections", [])}


def installed_collections() -> dict[str, str]:
    """Return {collection: version} for every collection ansible-galaxy can see."""
    galaxy = Path(sys.executable).with_name("ansible-galaxy")
    out = subprocess.run(
        [str(galaxy), "collection", "list", "--format", "json"],
        check=True, capture_output=True, text=True,
    ).stdout
    found: dict[str, str] = {}
    # Earlier paths win, as they do for Ansible itself.
    for collections in reversed(list(json.loads(out).values())):
        for name, info in collections.items():
            found[name] = info["version"]
    return found


def problems(required: dict[str, str], installed: dict[str, str]) -> list[str]:
    """Return one line per collection that is missing or too old."""
    lines = []
    for name, spec in sorted(required.items()):
        have = installed.get(name)
        if have is None:
            lines.append(f"{name} is not installed (need {spec})")
        elif spec != "*" and Version(have) not in SpecifierSet(spec.replace(" ", "")):
            lines.append(f"{name} {have} does not satisfy {spec}")
    return lines


def main() -> int:
    required = required_collections(Path(sys.argv[1]))
    bad = problems(required, installed_collections())
    for line in bad:
        print(f"collections: {line}: pin a newer 'ansible' in requirements.txt, then rerun 'make bootstrap'.",
              file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
