"""A bad set-up is explained: the bootstrap scripts end with one line saying what to do.

Each test runs the real script with a PATH of stand-in tools (a `docker` that fails, no
`dockerd`, a `debootstrap` that fails, ...) and, where it matters, as an unprivileged
user (setpriv), then checks the exit status and the one line on stderr. Nothing here
installs, starts or builds anything: every stand-in fails before that could happen.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


@pytest.fixture
def sandbox():
    """A world-readable directory (for the unprivileged runs) with a bin/ for stand-ins."""
    path = Path(tempfile.mkdtemp(prefix="depotix-bootstrap-"))
    (path / "bin").mkdir()
    path.chmod(0o755)
    (path / "bin").chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def stand_in(sandbox: Path, name: str, body: str) -> None:
    tool = sandbox / "bin" / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)


def copy_script(sandbox: Path, relative: str) -> Path:
    target = sandbox / Path(relative).name
    shutil.copy(ROOT / relative, target)
    target.chmod(target.stat().st_mode | stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
    return target


def run(argv: list[str], sandbox: Path, **env: str) -> subprocess.CompletedProcess:
    """Run with the stand-ins first on PATH and /usr/sbin left out (where dockerd and debootstrap live)."""
    environment = {"PATH": f"{sandbox / 'bin'}:/usr/bin:/bin", "HOME": str(sandbox), "LC_ALL": "C.UTF-8", **env}
    return subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=60, cwd=sandbox)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    return lines[0]


# ------------------------------------------------------------------ engine.sh


def test_engine_is_quiet_when_the_engine_answers(sandbox):
    stand_in(sandbox, "docker", "exit 0")
    result = run(["bash", copy_script(sandbox, "lab/bootstrap/engine.sh")], sandbox)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_engine_without_root_and_without_an_engine_says_what_to_do(sandbox):
    stand_in(sandbox, "docker", "exit 1")
    result = run(NOBODY + ["bash", str(copy_script(sandbox, "lab/bootstrap/engine.sh"))], sandbox)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("engine: no Docker engine answers and starting one needs root")
    assert "sudo make lab" in line


def test_engine_that_never_answers_points_at_its_log(sandbox):
    stand_in(sandbox, "docker", "exit 1")          # never answers
    stand_in(sandbox, "dockerd", "exit 1")         # present, so nothing is installed
    stand_in(sandbox, "containerd", "exit 1")
    stand_in(sandbox, "pgrep", "exit 0")           # "already running": nothing is started
    log = sandbox / "dockerd.log"
    result = run(["bash", copy_script(sandbox, "lab/bootstrap/engine.sh")], sandbox,
                 DEPOTIX_DOCKERD_WAIT="2", DEPOTIX_DOCKERD_LOG=str(log))
    assert result.returncode == 1
    assert one_line(result.stderr) == (f"engine: dockerd did not answer within 2s: read the end of {log}, "
                                       "fix what it says, then rerun.")


# ------------------------------------------------------------------ packages.sh


def test_packages_without_root_names_what_is_missing_and_the_command(sandbox):
    # /usr/sbin is not on PATH: dockerd and debootstrap look missing.
    result = run(NOBODY + ["bash", str(copy_script(sandbox, "lab/bootstrap/packages.sh"))], sandbox)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("packages: missing docker.io debootstrap")
    assert "sudo apt-get install docker.io debootstrap" in line


# ------------------------------------------------------------------ base image


def base_build(sandbox: Path, docker_body: str, **env: str) -> subprocess.CompletedProcess:
    stand_in(sandbox, "docker", docker_body)
    script_dir = sandbox / "base"
    script_dir.mkdir()
    shutil.copy(ROOT / "lab/images/base/build.sh", script_dir / "build.sh")
    return run(["bash", str(script_dir / "build.sh")], sandbox, **env)


def test_base_image_without_an_engine_says_to_start_one(sandbox):
    result = base_build(sandbox, "exit 1")
    assert result.returncode == 1
    assert one_line(result.stderr) == "base image: no Docker engine answers: run 'make engine' first."


def test_base_image_with_too_little_disk_says_how_much_is_needed(sandbox):
    # docker info reports the sandbox as the engine's root; no filesystem has 10^9 MB free.
    result = base_build(sandbox, f'[ "$1" = info ] && echo {sandbox} && exit 0; exit 1',
                        DEPOTIX_MIN_FREE_MB="1000000000")
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("base image: only ") and "the lab images need 1000000000 MB" in line
    assert "docker system prune" in line


def test_base_image_when_debootstrap_fails_shows_why_and_keeps_the_log(sandbox):
    stand_in(sandbox, "debootstrap", "echo 'E: Failed getting release file http://mirror.invalid/dists/bookworm/Release'; exit 1")
    result = base_build(sandbox, f'[ "$1" = info ] && echo {sandbox} && exit 0; exit 1',
                        DEPOTIX_MIN_FREE_MB="0", DEPOTIX_DEBIAN_MIRROR="http://mirror.invalid/debian")
    assert result.returncode == 1
    assert "E: Failed getting release file" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "base image: debootstrap failed (full log: /var/tmp/depotix-debootstrap.log): "
        "check that http://mirror.invalid/debian is reachable, then rerun.")
    assert "mirror.invalid" in Path("/var/tmp/depotix-debootstrap.log").read_text()


# ------------------------------------------------------------------ collections


def test_collections_short_of_the_requirements_are_named(sandbox):
    requirements = sandbox / "requirements.yml"
    requirements.write_text("collections:\n  - name: community.docker\n    version: '>=999.0.0'\n"
                            "  - name: depotix.nowhere\n    version: '>=1.0.0'\n")
    result = subprocess.run([sys.executable, str(ROOT / "lab/bootstrap/check_collections.py"), str(requirements)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("collections: community.docker ") and "does not satisfy >=999.0.0" in lines[0]
    assert lines[1].startswith("collections: depotix.nowhere is not installed (need >=1.0.0)")
    assert all(line.endswith("pin a newer 'ansible' in requirements.txt, then rerun 'make bootstrap'.") for line in lines)


def test_collections_of_the_project_are_satisfied():
    result = subprocess.run([sys.executable, str(ROOT / "lab/bootstrap/check_collections.py"),
                             str(ROOT / "requirements.yml")], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr) == (0, "")
