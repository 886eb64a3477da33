"""Shared helpers of the security tests: paths, and running the project's Ansible.

Nothing here needs Docker or a host: plays that must stop before any host is touched
run against a documentation address (192.0.2.10, TEST-NET-1) that nothing answers on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PRODUCTION = ROOT / "inventories" / "production"
PRODUCTION_HOST = "depotix-prod-1"
UNREACHABLE_ADDRESS = "192.0.2.10"


class AnsibleLoader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's tags: !unsafe text is never templated, so it is dropped."""


AnsibleLoader.add_constructor("!unsafe", lambda loader, node: "")
AnsibleLoader.add_constructor("!vault", lambda loader, node: "")


def ansible_env() -> dict[str, str]:
    """Return the environment of an operator's run: the project's ansible.cfg, no colour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "DEPOTIX_", "MOLECULE_"))}
    env.update({
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        # If a check let a play through, the unreachable host fails fast instead of hanging.
        "ANSIBLE_TIMEOUT": "3",
    })
    return env


def run(argv: list[str], cwd: Path = ROOT, timeout: int = 180) -> subprocess.CompletedProcess:
    """Run a command from the venv; return it with stdout and stderr merged into stdout."""
    return subprocess.run(argv, cwd=cwd, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, check=False)


def copy_of_production(directory: Path) -> Path:
    """Copy the production inventory (without any vault) into directory, its host answering nothing."""
    inventory = directory / "production"
    shutil.copytree(PRODUCTION, inventory, ignore=shutil.ignore_patterns("vault.yml"))
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("203.0.113.10", UNREACHABLE_ADDRESS))
    return inventory


@pytest.fixture
def production_copy(tmp_path: Path) -> Path:
    """Return a copy of the production inventory whose host address answers nothing."""
    return copy_of_production(tmp_path)
