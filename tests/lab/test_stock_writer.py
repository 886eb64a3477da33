"""The rollback scenarios' stock writer (molecule/_shared/files/stock_writer.py), against a stand-in API.

The stand-in is a real HTTP server on 127.0.0.1 that records the notes of the movements
it answers 201 to, and can refuse, fail or hang; nothing else is faked. The writer runs
as the scenarios run it: a separate process, stopped by its stop file.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRITER = ROOT / "molecule" / "_shared" / "files" / "stock_writer.py"
TOKEN = "writer-test-token-0123456789"


class StandInApi(ThreadingHTTPServer):
    """Answers POST /api/inventory/stock-movements/ as `mode` says: created, failing, hanging."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), StandInHandler)
        self.mode = "created"
        self.notes: list[str] = []
        self.seen: list[dict] = []
        self.lock = threading.Lock()
        self.busy = self.most_busy = 0


class StandInHandler(BaseHTTPRequestHandler):
    server: StandInApi

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append({"path": self.path, "auth": self.headers["Authorization"], "body": body})
        if self.server.mode == "hanging":
            with self.server.lock:
                self.server.busy += 1
                self.server.most_busy = max(self.server.most_busy, self.server.busy)
            time.sleep(3)
            with self.server.lock:
                self.server.busy -= 1
        status = 201 if self.server.mode == "created" else 500
        if status == 201:
            self.server.notes.append(body["note"])
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def api():
    server = StandInApi()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_writer(tmp_path: Path, token_file: Path, port: int, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, str(WRITER), "write", "--name", "t", "--item", "7", "--token-file", str(token_file),
            "--stop-file", str(tmp_path / "stop"), "--out", str(tmp_path / "summary.json"), "--port", str(port),
            "--max-seconds", "30", *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_notes(api: StandInApi, count: int, within: float = 60) -> None:
    """Until the stand-in has answered `count` movements (a loaded machine starts the writer late)."""
    deadline = time.monotonic() + within
    while len(api.notes) < count:
        assert time.monotonic() < deadline, f"the writer sent {len(api.notes)} movements in {within} s"
        time.sleep(0.05)


def stop_writer(tmp_path: Path, writer: subprocess.Popen) -> dict:
    (tmp_path / "stop").touch()
    _, err = writer.communicate(timeout=30)
    assert writer.returncode == 0, err
    return json.loads((tmp_path / "summary.json").read_text())


def check(tmp_path: Path, found: list[str]) -> tuple[dict, str]:
    result = subprocess.run([sys.executable, str(WRITER), "check", "--summary", str(tmp_path / "summary.json"),
                             "--out", str(tmp_path / "check.json")], input="\n".join(found) + "\n",
                            capture_output=True, text=True, check=True)
    return json.loads((tmp_path / "check.json").read_text()), result.stdout


def test_each_acknowledged_movement_is_named_and_found(api, token_file, tmp_path):
    writer = start_writer(tmp_path, token_file, api.server_port)
    wait_for_notes(api, 21)
    summary = stop_writer(tmp_path, writer)
    assert summary["acknowledged"] == summary["sent"] == len(api.notes) > 20
    # A stand-in on this machine answers at once: the latencies are measured, small and ordered.
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"] < 1000
    assert summary["acknowledged_ids"] == [f"writer:t:{n}" for n in range(1, summary["sent"] + 1)]
    assert sorted(summary["acknowledged_ids"]) == sorted(api.notes)
    first = api.seen[0]
    assert first["path"] == "/api/inventory/stock-movements/" and first["auth"] == f"Bearer {TOKEN}"
    assert first["body"] == {"item": 7, "type": "IN", "qty_base": 1, "note": "writer:t:1"}
    verdict, line = check(tmp_path, api.notes)
    assert (verdict["lost"], verdict["lost_ids"], verdict["found_in_database"]) == (0, [], summary["acknowledged"])
    assert f"acknowledged {summary['acknowledged']}," in line and "lost 0," in line


def test_a_movement_missing_from_the_database_is_lost_by_name(api, token_file, tmp_path):
    writer = start_writer(tmp_path, token_file, api.server_port)
    wait_for_notes(api, 4)
    summary = stop_writer(tmp_path, writer)
    missing = summary["acknowledged_ids"][3]
    verdict, _ = check(tmp_path, [note for note in api.notes if note != missing] + ["writer:t:999999"])
    assert (verdict["lost"], verdict["lost_ids"]) == (1, [missing])
    assert verdict["found_in_database"] == summary["acknowledged"] - 1
    assert verdict["found_unacknowledged"] == 1


@pytest.mark.parametrize("mode", ["refused", "failing"])
def test_the_rate_holds_while_the_api_refuses_or_fails(api, token_file, tmp_path, mode):
    api.mode = mode
    port = unused_port() if mode == "refused" else api.server_port
    # 30 ticks, then the writer stops by itself (a fixed sleep would count a late start on a busy machine).
    writer = start_writer(tmp_path, token_file, port, "--timeout", "0.5", "--max-count", "30")
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped_by"] == "max-count"
    assert summary["acknowledged"] == 0 and summary["failed"] == summary["sent"] == 30
    assert set(summary["failed_by"]) == {"connection refused" if mode == "refused" else "500"}
    assert 17 <= summary["rate_achieved"] <= 21 and summary["skipped"] == 0


def test_a_hanging_api_gets_no_more_than_max_in_flight_requests_and_the_ticks_go_on(api, token_file, tmp_path):
    api.mode = "hanging"
    # The stand-in answers after 3 s, within the 4 s timeout: the first 3 requests hold
    # every place for the 2 s the writer runs, so it sends no others and skips its ticks.
    writer = start_writer(tmp_path, token_file, api.server_port, "--timeout", "4", "--max-in-flight", "3")
    time.sleep(2)
    summary = stop_writer(tmp_path, writer)
    assert (api.most_busy, summary["sent"], summary["failed"]) == (3, 3, 3)
    assert 17 <= (summary["sent"] + summary["skipped"]) / summary["seconds"] <= 21
    # Each of the three waited for the stand-in's answer (3 s, within the timeout).
    assert 2900 <= summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"] <= summary["latency_ms"]["max"] < 4000


def test_it_stops_by_itself_after_max_count(api, token_file, tmp_path):
    writer = start_writer(tmp_path, token_file, api.server_port, "--max-count", "5", "--rate", "50")
    writer.communicate(timeout=30)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["sent"], summary["stopped_by"], len(api.notes)) == (5, "max-count", 5)


def test_a_token_file_others_can_read_is_refused_and_the_token_is_never_written(api, token_file, tmp_path):
    token_file.chmod(0o644)
    writer = start_writer(tmp_path, token_file, api.server_port)
    _, err = writer.communicate(timeout=30)
    assert writer.returncode != 0 and "0600" in err and TOKEN not in err
    assert api.seen == [] and not (tmp_path / "summary.json").exists()
    token_file.chmod(0o600)
    writer = start_writer(tmp_path, token_file, api.server_port)
    time.sleep(0.5)
    stop_writer(tmp_path, writer)
    assert TOKEN not in (tmp_path / "summary.json").read_text()
    assert TOKEN not in " ".join(writer.args)
