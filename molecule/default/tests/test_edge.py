"""The edge (roles/edge): the only public entry, HTTPS with the lab's certificate, its
runtime socket on the host only, a configuration that validates, and a server taken out
and put back through the runtime socket (side_effect.yml, edge_server.json).

Runs against the lab server that site.yml converged.
"""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
from pathlib import Path

from test_no_secret_leaked import secrets_dir

EDGE = "depotix-edge"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def listeners(host) -> list[tuple[str, int, str]]:
    """Return (address, port, process) of every listening TCP socket of the lab server."""
    found = []
    for line in host.check_output("ss -Hltnp").splitlines():
        local, users = line.split()[3], line.split("users:", 1)[-1]
        address, port = local.rsplit(":", 1)
        process = users.split('"')[1] if '"' in users else "?"
        found.append((address.strip("[]").split("%")[0], int(port), process))
    return found


def beyond_loopback(address: str) -> bool:
    if address in ("*", "0.0.0.0", "::"):
        return True
    return not any(ipaddress.ip_address(address) in network for network in LOOPBACK)


def test_only_the_edge_listens_beyond_loopback(host):
    found = listeners(host)
    assert {(port, process) for address, port, process in found if beyond_loopback(address)} == {
        (80, "haproxy"), (443, "haproxy")}
    # The control: the API and the database do listen, on loopback.
    assert {port for address, port, _ in found if not beyond_loopback(address)} >= {5432, 8001}


def test_the_edge_serves_the_api_over_http_and_https(host):
    for url in ("http://127.0.0.1/healthz", "https://127.0.0.1/healthz"):
        answer = host.check_output(f"curl -sk -w ' %{{http_code}}' {url}")
        body, status = answer.rsplit(" ", 1)
        assert status == "200" and json.loads(body)["ok"] is True, url


def test_https_presents_the_certificate_the_lab_generated(host):
    presented = host.check_output(
        "python3 -c \"import ssl; print(ssl.get_server_certificate(('127.0.0.1', 443)))\"")
    generated = (secrets_dir() / "edge.crt").read_text()
    assert ssl.PEM_cert_to_DER_cert(presented) == ssl.PEM_cert_to_DER_cert(generated)


def test_the_runtime_socket_and_the_key_are_for_root_only(host):
    socket = host.file("/run/depotix-edge/admin.sock")
    assert socket.is_socket and (socket.mode, socket.user, socket.group) == (0o660, "root", "root")
    pem = host.file("/etc/depotix/edge/certs/edge.pem")
    assert (pem.mode, pem.user) == (0o600, "root")
    assert host.file("/etc/depotix/edge/certs").mode == 0o700


def test_the_configuration_validates(host):
    check = host.run(f"docker exec {EDGE} haproxy -c -q -f /usr/local/etc/haproxy/haproxy.cfg")
    assert check.rc == 0, check.stderr
    # The control: a broken configuration fails the same check.
    broken = host.run(f"docker exec {EDGE} sh -c 'printf \"frontend x\\n  bind :80\\n  nonsense\\n\" > /tmp/bad.cfg"
                      f" && haproxy -c -q -f /tmp/bad.cfg'")
    assert broken.rc != 0


def test_the_edge_container_is_confined(host):
    config = json.loads(host.check_output(f"docker inspect {EDGE}"))[0]["HostConfig"]
    assert config["ReadonlyRootfs"] is True
    assert config["CapDrop"] == ["ALL"] and config["CapAdd"] == ["NET_BIND_SERVICE"]
    assert config["NetworkMode"] == "host"


def test_a_server_taken_out_gets_503_with_retry_after_and_comes_back():
    seen = json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "edge_server.json").read_text())
    assert seen["out"]["status"] == 503 and seen["out"]["retry_after"] == "10"
    assert "retry in 10 s" in seen["out"]["body"]
    assert seen["back"]["status"] == 200 and seen["back"]["json"]["ok"] is True


def test_a_configuration_that_fails_haproxy_c_is_never_written_nor_loaded():
    seen = json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "edge_server.json").read_text())
    refused = seen["refused"]
    assert refused["msg"] and "haproxy.cfg: the new content fails validation" in refused["msg"]
    assert "invalid address: '999.1.1.1'" in refused["msg"]  # haproxy -c's own words
    assert refused["config_kept"] is True and refused["status_after"] == 200
