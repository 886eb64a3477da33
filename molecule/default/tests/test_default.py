"""The Docker host of site.yml: engine, application network, directories."""

import json

import pytest



def test_inner_docker_engine_answers(host):
    assert host.run("docker info --format '{{.ServerVersion}}'").rc == 0


def test_application_network_is_a_bridge(host):
    out = host.check_output("docker network inspect server_appnet")
    assert json.loads(out)[0]["Driver"] == "bridge"


@pytest.mark.parametrize(
    ("path", "mode"),
    [("/home/deploy/Depotix", 0o750), ("/home/deploy/backups", 0o700)],
)
def test_directories_have_tight_modes(host, path, mode):
    d = host.file(path)
    assert d.is_directory
    assert d.mode == mode
