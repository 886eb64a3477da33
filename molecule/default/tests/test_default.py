"""site.yml on a fresh lab server: the whole stack, converged and idempotent."""

import json
import re

import pytest
from depotix_checks import (applied_migrations, check_constraints, container_health, container_image, health, ledger,
                            psql, run_log)


def recap(name: str) -> dict[str, dict[str, int]]:
    """Return {host: {ok: n, changed: n, failed: n, ...}} from a kept run's PLAY RECAP."""
    lines = run_log(name).split("PLAY RECAP", 1)[1].splitlines()
    return {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
            for m in (re.match(r"^(\S+)\s+:\s+(ok=\d+.*)$", line) for line in lines) if m}


def test_the_first_site_run_built_the_stack():
    hosts = recap("site_1")
    assert any(h.startswith("depotix-") for h in hosts)
    assert all(counts["failed"] == 0 and counts["unreachable"] == 0 for counts in hosts.values())
    assert sum(counts["changed"] for counts in hosts.values()) > 10


def test_the_idempotence_run_of_site_changed_nothing():
    hosts = recap("site_2")
    assert any(h.startswith("depotix-") for h in hosts)
    assert {h: (c["changed"], c["failed"]) for h, c in hosts.items()} == {h: (0, 0) for h in hosts}


def test_inner_docker_engine_answers(host):
    assert host.run("docker info --format '{{.ServerVersion}}'").rc == 0


def test_application_network_is_a_bridge(host):
    out = host.check_output("docker network inspect server_appnet")
    assert json.loads(out)[0]["Driver"] == "bridge"


@pytest.mark.parametrize(("path", "mode"), [
    ("/home/deploy/Depotix", 0o750),
    ("/home/deploy/backups", 0o700),
    ("/home/deploy/Depotix/api.env", 0o600),
    ("/home/deploy/Depotix/secrets/postgres/superuser_password", 0o400),
    ("/home/deploy/Depotix/secrets/api/db_password", 0o400),
    ("/home/deploy/Depotix/secrets/api/secret_key", 0o400),
])
def test_files_and_directories_have_tight_modes(host, path, mode):
    assert host.file(path).mode == mode


@pytest.mark.parametrize("container", ["server-postgres-1", "api"])
def test_both_containers_run_and_are_healthy(host, container):
    assert container_health(host, container) == "healthy"


def test_healthz_answers_200_with_release_1_0(host):
    status, body = health(host)
    assert (status, body) == (200, {"ok": True, "release": "1.0", "database": True})


# 8001: slot blue, where site.yml starts the first release.
@pytest.mark.parametrize("port", [5432, 8001])
def test_published_ports_listen_on_loopback_only(host, port):
    listeners = [line.split()[3] for line in host.check_output("ss -tlnH").splitlines()
                 if line.split()[3].endswith(f":{port}")]
    assert listeners == [f"127.0.0.1:{port}"]


def test_api_processes_do_not_run_as_root(host):
    pid = host.check_output("docker inspect --format '{{.State.Pid}}' api")
    uids = host.check_output(f"ps -o uid= -p {pid} --ppid {pid}").split()
    assert len(uids) >= 2 and set(uids) == {"10001"}


def test_api_container_has_a_read_only_root_and_never_migrates_on_start(host):
    config = json.loads(host.check_output("docker inspect api"))[0]
    assert config["HostConfig"]["ReadonlyRootfs"] is True
    assert "migrate" not in " ".join(config["Config"]["Cmd"] + (config["Config"]["Entrypoint"] or []))


def test_inventory_is_at_0007(host):
    assert applied_migrations(host, "inventory")[-1] == "0007_populate_customer_numbers"
    assert container_image(host, "api") == "depotix-lab/api:1.0"


def test_qty_base_check_is_present(host):
    constraints = check_constraints(host, "inventory_stockmovement")
    assert constraints["inventory_stockmovement_qty_base_non_negative"] == "CHECK ((qty_base >= 0))"


def test_application_role_owns_the_database_and_is_no_superuser(host):
    assert psql(host, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'depotix'") == "depotix"
    assert psql(host, "SELECT rolsuper FROM pg_roles WHERE rolname = 'depotix'") == "f"


def test_ledger_records_release_1_0_once(host):
    assert [(e["release"], e["outcome"]) for e in ledger(host)] == [("1.0", "ok")]
    assert ledger(host)[0]["leaves"]["inventory"] == ["0007_populate_customer_numbers"]
