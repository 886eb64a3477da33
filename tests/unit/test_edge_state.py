"""roles/edge/files/edge-state.py against a stand-in for HAProxy's runtime socket.

The stand-in is a real Unix socket server that answers `show stat` and `show servers
state` the way HAProxy 2.6 does (CSV with a `# ` header; the state file's version line).
The real HAProxy is exercised by the Molecule scenarios (the api role reads it before
every switch).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "edge" / "files" / "edge-state.py"

STAT = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,\n"
    "public,FRONTEND,,,3,9,4096,40,0,0,0,0,0,,,,,OPEN,\n"
    "api,blue,0,0,2,4,,20,0,0,,0,,0,0,0,0,UP,\n"
    "api,green,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,\n"
    "api,BACKEND,0,0,2,4,410,20,0,0,0,0,,0,0,0,0,UP,\n"
    "stats,FRONTEND,,,0,0,4096,0,0,0,0,0,0,,,,,OPEN,\n"
)
STATE = "1\n# be_id be_name srv_id srv_name\n3 api 1 blue\n3 api 2 green\n"


@pytest.fixture
def haproxy(tmp_path):
    """A stand-in runtime socket; yields its path and the commands it received."""
    path = tmp_path / "admin.sock"
    received: list[str] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                command = conn.recv(4096).decode().strip()
                received.append(command)
                conn.sendall({"show stat": STAT, "show servers state": STATE}.get(command, "Unknown command.\n").encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, received
    stop.set()
    thread.join(timeout=2)
    server.close()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=30)


def test_servers_prints_the_backends_servers_with_status_and_sessions(haproxy):
    path, received = haproxy
    result = run("--servers", str(path), "api")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"servers": {"blue": {"status": "UP", "sessions": 2},
                                                     "green": {"status": "MAINT", "sessions": 0}}}
    assert received == ["show stat"]


def test_servers_of_an_unknown_backend_is_an_error_that_says_so(haproxy):
    path, _ = haproxy
    result = run("--servers", str(path), "nope")
    assert result.returncode == 1 and result.stdout == ""
    assert "no backend 'nope'" in result.stderr


def test_a_socket_that_does_not_answer_is_an_error_that_says_so(tmp_path):
    result = run("--servers", str(tmp_path / "absent.sock"), "api")
    assert result.returncode == 1
    assert "does not answer" in result.stderr and "is the edge running?" in result.stderr


def test_the_states_are_saved_atomically_to_the_file(haproxy, tmp_path):
    path, received = haproxy
    target = tmp_path / "server-state"
    result = run(str(path), str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == STATE and not (tmp_path / "server-state.tmp").exists()
    assert received == ["show servers state"]


def test_bad_usage_says_how_to_call_it():
    result = run("--servers", "only-one")
    assert result.returncode == 2 and "usage: depotix-edge-state" in result.stderr
