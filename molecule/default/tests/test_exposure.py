"""Nothing exposed: loopback-only ports, an unprivileged API, tight file modes, no secret
in the containers' configuration.

Runs against the lab server that `site.yml -vvv` (and one dump) converged.
"""

from __future__ import annotations

import json
import socket

import pytest
from depotix_checks import API_CONTAINER, BACKUP_DIR, DB_CONTAINER, PROJECT_DIR
from test_no_secret_leaked import LAB_SECRETS, lab_secret

API_UID = 10001
# (container, its port, the host port it is published on): the API's 8000 in slot blue
# (8001), where site.yml starts the first release.
PUBLISHED = [(DB_CONTAINER, 5432, 5432), (API_CONTAINER, 8000, 8001)]


def inspect(host, container: str) -> dict:
    return json.loads(host.check_output(f"docker inspect {container}"))[0]


def listening_addresses(host, port: int) -> set[str]:
    """Return the addresses the server listens on for a TCP port (empty: nothing listens)."""
    sockets = host.socket.get_listening_sockets()
    return {address.rsplit(":", 1)[0].removeprefix("tcp://").strip("[]")
            for address in sockets if address.startswith("tcp://") and address.endswith(f":{port}")}


def server_address(host) -> str:
    """Return the address the controller reaches the server on (its eth0)."""
    return host.check_output("ip -4 -o addr show dev eth0").split()[3].split("/")[0]


def connects(address: str, port: int) -> bool:
    """Return whether a TCP connection from the controller to address:port succeeds."""
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(("container", "container_port", "port"), PUBLISHED)
def test_server_listens_on_the_port_on_loopback_only(host, container, container_port, port):
    assert listening_addresses(host, port) == {"127.0.0.1"}


@pytest.mark.parametrize(("container", "container_port", "port"), PUBLISHED)
def test_port_is_published_on_loopback_only(host, container, container_port, port):
    bindings = inspect(host, container)["HostConfig"]["PortBindings"]
    assert [(b["HostIp"], b["HostPort"]) for b in bindings[f"{container_port}/tcp"]] == [("127.0.0.1", str(port))]


def test_controller_reaches_a_port_the_server_opens_on_all_interfaces(host):
    # The control for the test below: the server's address is reachable at all.
    host.run("setsid -f timeout 20 python3 -m http.server 18765 --bind 0.0.0.0 >/dev/null 2>&1")
    host.run("for i in $(seq 50); do ss -ltn | grep -q ':18765 ' && break; sleep 0.1; done")
    assert connects(server_address(host), 18765) is True


@pytest.mark.parametrize(("container", "container_port", "port"), PUBLISHED)
def test_port_refuses_connections_from_outside_the_server(host, container, container_port, port):
    assert connects(server_address(host), port) is False


def test_api_answers_on_loopback(host):
    assert host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8001/healthz") == "200"


def test_every_api_process_runs_as_the_api_user(host):
    top = host.check_output(f"docker top {API_CONTAINER} -eo pid,uid,args").splitlines()[1:]
    processes = [line.split(None, 2)[1:] for line in top]
    assert processes and any("gunicorn" in args for _, args in processes)
    assert {int(uid) for uid, _ in processes} == {API_UID}


def test_api_container_is_configured_unprivileged(host):
    config = inspect(host, API_CONTAINER)
    assert config["Config"]["User"] == f"{API_UID}:{API_UID}"
    assert config["HostConfig"]["ReadonlyRootfs"] is True
    assert config["HostConfig"]["Privileged"] is False
    assert config["HostConfig"]["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in config["HostConfig"]["SecurityOpt"]


def test_api_process_has_no_capability_and_cannot_gain_one(host):
    status = host.check_output(f"docker exec {API_CONTAINER} cat /proc/1/status")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert int(fields["Uid"].split()[0]) == API_UID
    assert int(fields["CapEff"].strip(), 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"


def test_api_root_filesystem_refuses_writes(host):
    result = host.run(f"docker exec {API_CONTAINER} touch /app/written-by-test")
    assert result.rc != 0
    assert "Read-only file system" in result.stderr


def test_database_container_cannot_gain_privileges(host):
    assert "no-new-privileges:true" in inspect(host, DB_CONTAINER)["HostConfig"]["SecurityOpt"]


@pytest.mark.parametrize(("path", "mode", "uid"), [
    (f"{PROJECT_DIR}/api.env", 0o600, 0),
    (f"{PROJECT_DIR}/secrets/api/db_password", 0o400, API_UID),
    (f"{PROJECT_DIR}/secrets/api/secret_key", 0o400, API_UID),
    (f"{PROJECT_DIR}/secrets/postgres", 0o700, 0),
    (f"{PROJECT_DIR}/secrets/postgres/superuser_password", 0o400, 0),
    (BACKUP_DIR, 0o700, 0),
])
def test_file_with_secrets_or_data_has_a_tight_mode(host, path, mode, uid):
    f = host.file(path)
    assert f.exists
    assert (oct(f.mode), f.uid) == (oct(mode), uid)


def test_every_backup_file_is_for_the_owner_only(host):
    files = host.check_output(f"find {BACKUP_DIR} -mindepth 1 -printf '%m %f\\n'").splitlines()
    names = [line.split(" ", 1)[1] for line in files]
    assert any(n.endswith(".dump") for n in names) and any(n.endswith(".dump.sha256") for n in names)
    assert [line for line in files if not line.startswith("600 ")] == []


@pytest.mark.parametrize("container", [DB_CONTAINER, API_CONTAINER])
@pytest.mark.parametrize("name", LAB_SECRETS)
def test_container_configuration_holds_no_secret(host, container, name):
    # Compared as plain values: pytest would print the arguments of a call in the assert.
    found = lab_secret(name) in host.check_output(f"docker inspect {container}")
    assert found is False


@pytest.mark.parametrize("path", [f"{PROJECT_DIR}/api.env", "/etc/depotix/backup.json", f"{PROJECT_DIR}/releases.json"])
@pytest.mark.parametrize("name", LAB_SECRETS)
def test_settings_files_hold_no_secret(host, path, name):
    found = lab_secret(name) in host.file(path).content_string
    assert found is False
