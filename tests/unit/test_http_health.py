"""The http_health module: the health gate and the integrity probe, against a real HTTP server.

The server runs in a thread of the test process and answers what each test scripts (a
status per request, or nothing at all); the module runs in-process through AnsibleModule.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List

import http_health
import pytest
from ansible.module_utils.testing import patch_module_args


class Script:
    """What the server answers: one status per request (the last one repeats), and what it saw."""

    def __init__(self, statuses: List[int]) -> None:
        self.statuses = statuses
        self.seen: List[Dict[str, str]] = []


@pytest.fixture
def server() -> Iterator[Any]:
    script = Script([200])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            script.seen.append(dict(self.headers))
            status = script.statuses[min(len(script.seen) - 1, len(script.statuses) - 1)]
            body = json.dumps({"status": "ok" if status == 200 else "down", "release": "2.0"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/healthz"
    httpd.script = script
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def run_module(args: Dict[str, Any]) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        http_health.main()


def module_result(capsys: Any, args: Dict[str, Any]) -> Dict[str, Any]:
    run_module(args)
    return json.loads(capsys.readouterr().out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_gate_passes_after_enough_good_answers_in_a_row(server: Any, capsys: Any) -> None:
    server.script.statuses = [503, 200, 503, 200, 200, 200]
    result = module_result(capsys, {"url": server.url, "successes": 3, "timeout": 10, "interval": 0.01})
    assert result["ok"] is True and not result.get("failed")
    assert (result["attempts"], result["consecutive"], result["status"]) == (6, 3, 200)
    assert result["json"] == {"status": "ok", "release": "2.0"}
    assert result["changed"] is False


def test_the_gate_gives_up_at_its_timeout_saying_what_answered(server: Any, capsys: Any) -> None:
    server.script.statuses = [500]
    result = module_result(capsys, {"url": server.url, "successes": 2, "timeout": 0.3, "interval": 0.05})
    assert result["ok"] is False and "failed" not in result
    assert result["reason"].startswith("last answer 500")
    assert 0.2 <= result["elapsed"] <= 2.0
    assert len(server.script.seen) == result["attempts"] >= 2


def test_nothing_listening_is_no_answer_and_fails_only_when_asked(capsys: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}/healthz"
    result = module_result(capsys, {"url": url, "timeout": 0.2, "interval": 0.05})
    assert (result["ok"], result["status"]) == (False, 0)
    assert result["reason"].startswith("no answer (") and "refused" in result["reason"].lower()
    result = module_result(capsys, {"url": url, "timeout": 0.2, "interval": 0.05, "fail_unhealthy": True})
    assert result["failed"] is True and url in result["msg"] and "no answer" in result["msg"]


def test_a_maintenance_answer_counts_when_listed_and_the_headers_arrive(server: Any, capsys: Any) -> None:
    server.script.statuses = [503]
    result = module_result(capsys, {"url": server.url, "healthy_status": [200, 503],
                                    "headers": {"Host": "api.depotix.example", "X-Forwarded-Proto": "https"}})
    assert (result["ok"], result["status"], result["attempts"]) == (True, 503, 1)
    assert result["json"]["status"] == "down"
    assert server.script.seen[0]["Host"] == "api.depotix.example"
    assert server.script.seen[0]["X-Forwarded-Proto"] == "https"


@pytest.mark.parametrize("args", [
    {"url": "ftp://127.0.0.1/healthz"},
    {"url": "http://127.0.0.1/healthz", "successes": 0},
    {"url": "http://127.0.0.1/healthz", "timeout": 0},
])
def test_bad_input_is_refused_and_nothing_is_sent(server: Any, capsys: Any, args: Dict[str, Any]) -> None:
    result = module_result(capsys, args)
    assert result["failed"] is True and "nothing was sent" in result["msg"]
    assert server.script.seen == []
