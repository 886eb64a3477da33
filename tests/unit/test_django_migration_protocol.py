"""The protocol module, and the program the module sends into containers (protocol, then probe).

The program is taken from what ``invoke`` hands to docker, then run by a local
Python without site-packages: no Ansible and no Django, like a bare container.
It must still parse, find the protocol and answer between the sentinels.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest
from ansible.module_utils import django_migration_probe as probe
from ansible.module_utils import django_migration_protocol as protocol
from ansible.module_utils.django_migration_docker import (
    DockerClient,
    ProbeOptions,
    container_program,
    exec_runner,
    invoke,
    unpack_source,
)
from conftest import LIBRARY, MODULE_UTILS, PROBE, PROTOCOL

# Every host-side file of the module; none may use the probe's code.
HOST_FILES = [LIBRARY / "django_migration.py"] + [
    path for path in sorted(MODULE_UTILS.glob("django_migration_*.py")) if path != PROBE
]


def sent_program() -> str:
    """Return the stdin ``invoke`` gives ``docker exec`` for a query, answered by a stand-in docker."""
    sent: List[Tuple[List[str], Optional[str]]] = []

    def run(argv: List[str], data: Optional[str]) -> Tuple[int, str, str]:
        sent.append((argv, data))
        return 0, protocol.render({"ok": True, "before": {}}), ""

    document = invoke(DockerClient(run, "docker"), exec_runner(ProbeOptions(container="api")), {"action": "query"})
    assert document["ok"] is True
    assert len(sent) == 1 and sent[0][1] is not None
    return sent[0][1]


def run_bare(program: str, argv: List[str], cwd: Path) -> "subprocess.CompletedProcess[str]":
    """Run ``program`` on ``python -`` without site-packages (-S) or PYTHON* variables (-I)."""
    return subprocess.run(
        [sys.executable, "-I", "-S", "-"] + argv,
        input=program,
        capture_output=True,
        text=True,
        cwd=str(cwd),
        timeout=60,
        check=False,
    )


def test_result_document_round_trips_with_the_protocol_version() -> None:
    text = "warning: noise\n" + protocol.render({"ok": False, "kind": "lossy"}) + "\ntrailing noise\n"

    assert protocol.parse_output(text) == {"ok": False, "kind": "lossy", "protocol": protocol.PROTOCOL}


def test_tail_keeps_the_last_lines_that_say_something() -> None:
    text = "one\n\n  ^^^^^^\ntwo\n   ~~~^^^\nthree\n"

    assert protocol.tail(text) == ["one", "two", "three"]
    assert protocol.tail(text, 2) == ["two", "three"]


def test_names_of_steps_and_migration_numbers() -> None:
    assert protocol.step_key({"app": "shop", "name": "0003_item_price"}) == "shop.0003_item_price"
    assert protocol.migration_number("0007_populate") == 7
    assert protocol.migration_number("custom") is None


def test_container_gets_the_program_built_from_both_files_unchanged() -> None:
    program = sent_program()

    assert program == container_program()
    literals = [node.value for node in ast.walk(ast.parse(program)) if isinstance(node, ast.Constant)]
    sources = [unpack_source(value) for value in literals if isinstance(value, str) and len(value) > 1000]
    assert PROTOCOL.read_text(encoding="utf-8") in sources
    assert PROBE.read_text(encoding="utf-8") in sources
    assert program.isascii()


def test_program_answers_between_sentinels_on_a_python_without_ansible_or_django(tmp_path: Path) -> None:
    completed = run_bare(sent_program(), [json.dumps({"action": "query"})], tmp_path)

    document = protocol.parse_output(completed.stdout)
    assert document is not None, completed.stdout + completed.stderr
    assert completed.stdout.strip().startswith(protocol.BEGIN)
    assert completed.stdout.strip().endswith(protocol.END)
    assert document["ok"] is False
    assert document["kind"] == "django_missing", document
    assert document["protocol"] == protocol.PROTOCOL
    assert completed.returncode == 0


def test_program_refuses_a_bad_request_through_the_protocol_module(tmp_path: Path) -> None:
    request = {"action": "migrate", "targets": {"shop": 7}}

    completed = run_bare(container_program(), [json.dumps(request)], tmp_path)

    document = protocol.parse_output(completed.stdout)
    assert document is not None, completed.stdout + completed.stderr
    assert document["kind"] == "bad_request"
    assert "Quote numbers" in document["message"]
    assert completed.returncode == 2


def test_probe_source_alone_needs_the_protocol_module(tmp_path: Path) -> None:
    """Why the bootstrap exists: sent alone, the probe cannot find the protocol in a bare container."""
    completed = run_bare(PROBE.read_text(encoding="utf-8"), [json.dumps({"action": "query"})], tmp_path)

    assert protocol.parse_output(completed.stdout) is None
    assert "ModuleNotFoundError" in completed.stderr


@pytest.mark.parametrize("path", [PROTOCOL, PROBE], ids=lambda path: path.name)
def test_files_sent_to_containers_parse_as_python_3_8(path: Path) -> None:
    ast.parse(path.read_text(encoding="utf-8"), filename=path.name, feature_version=(3, 8))


def test_program_parses_as_python_3_8() -> None:
    ast.parse(container_program(), feature_version=(3, 8))


def test_program_fits_in_a_pipe_buffer_so_docker_failing_before_reading_it_is_explained() -> None:
    # docker run exits without reading stdin when the image is missing; a program larger than the pipe
    # buffer (64 KiB on Linux) would make run_command fail on a broken pipe instead of showing docker's error.
    assert len(container_program().encode("ascii")) < 64 * 1024


def top_level_names(path: Path) -> Set[str]:
    """Return the names a file defines at module level (assignments, functions, classes)."""
    names: Set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def test_probe_keeps_no_copy_of_what_the_protocol_defines() -> None:
    shared = top_level_names(PROTOCOL)

    assert shared >= {"BEGIN", "END", "PROTOCOL", "render", "parse_output", "tail", "step_key", "UNLISTED_CHOICES"}
    assert top_level_names(PROBE) & shared == set()
    for name in ("ACTIONS", "UNLISTED_CHOICES", "normalise_targets", "render", "step_key", "tail"):
        assert getattr(probe, name) is getattr(protocol, name)


def imports_of(path: Path) -> Dict[str, Any]:
    """Return {module_utils module name: import node} for every import of one in ``path``."""
    found: Dict[str, Any] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "ansible.module_utils":
            found.update({alias.name: node for alias in node.names})
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ansible.module_utils."):
            found[node.module.rsplit(".", 1)[1]] = node
        elif isinstance(node, ast.Import):
            found.update({alias.name.rsplit(".", 1)[1]: node for alias in node.names if "module_utils." in alias.name})
    return found


def test_host_side_reads_the_probe_only_as_source_text() -> None:
    importers = [path.name for path in HOST_FILES if "django_migration_probe" in imports_of(path)]
    assert importers == ["django_migration_docker.py"]

    # Its one import is inside a function that is never called: it only tells Ansible to bundle it.
    tree = ast.parse((MODULE_UTILS / "django_migration_docker.py").read_text(encoding="utf-8"))
    holders = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
               and any(isinstance(inner, ast.ImportFrom) and any(alias.name == "django_migration_probe"
                                                                  for alias in inner.names)
                       for inner in ast.walk(node))]
    assert holders == ["_bundle_the_probe"]
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id == "_bundle_the_probe"]
    assert calls == []


def test_the_host_never_imports_the_probe_yet_ships_its_source() -> None:
    program = f"""
import sys
import ansible.module_utils
ansible.module_utils.__path__.append({str(MODULE_UTILS)!r})
sys.path.insert(0, {str(LIBRARY)!r})
import django_migration
from ansible.module_utils.django_migration_docker import container_program, read_probe_source
program = container_program()
print(int("ansible.module_utils.django_migration_probe" in sys.modules), len(read_probe_source()))
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    imported, length = done.stdout.split()
    assert imported == "0"
    assert int(length) == len(PROBE.read_text(encoding="utf-8"))


def test_protocol_imports_nothing_but_the_standard_library() -> None:
    tree = ast.parse(PROTOCOL.read_text(encoding="utf-8"))
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}

    assert modules <= {"__future__", "json", "re", "typing"}
