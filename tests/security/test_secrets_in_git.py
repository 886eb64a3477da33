"""Secrets never reach git: the lab's are generated into an ignored directory, the
production vault is ignored and, if ever tracked, encrypted; the inventories hold only
references to secrets, never values."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from conftest import PRODUCTION, ROOT

LAB_SECRETS_FILE = ROOT / "inventories" / "lab" / "group_vars" / "all" / "secrets.yml"
PRODUCTION_VARS = PRODUCTION / "group_vars" / "all" / "main.yml"
VAULT_EXAMPLE = PRODUCTION / "group_vars" / "all" / "vault.yml.example"
SECRET_VARIABLES = ["postgres_superuser_password", "postgres_password", "api_secret_key"]
# The edge's certificate and key: generated in the lab by lab/certificate.sh, from the vault in production.
TLS_VARIABLES = ["edge_tls_certificate", "edge_tls_key"]


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def tracked_files() -> list[str]:
    return git("ls-files").stdout.splitlines()


@pytest.mark.parametrize("path", [
    "inventories/production/group_vars/all/vault.yml",
    ".lab-secrets/postgres_password",
])
def test_secret_files_are_ignored_by_git(path):
    assert git("check-ignore", "--no-index", "-q", path).returncode == 0


def test_no_generated_lab_secret_is_tracked():
    assert [f for f in tracked_files() if f.startswith(".lab-secrets/")] == []


def test_every_tracked_vault_file_is_encrypted():
    vaults = [f for f in tracked_files() if re.search(r"(^|/)vault\.ya?ml$", f) and "/group_vars/" in f]
    assert [f for f in vaults if not (ROOT / f).read_text().startswith("$ANSIBLE_VAULT;")] == []


@pytest.mark.parametrize("name", SECRET_VARIABLES)
def test_lab_secret_is_generated_by_a_password_lookup(name):
    value = yaml.safe_load(LAB_SECRETS_FILE.read_text())[name]
    assert value.strip().startswith("{{ lookup('ansible.builtin.password', lab_secrets_dir ~ ")


@pytest.mark.parametrize("name", TLS_VARIABLES)
def test_lab_certificate_is_generated_into_the_lab_secrets_directory(name):
    value = yaml.safe_load(LAB_SECRETS_FILE.read_text())[name]
    assert value.strip().startswith("{{ lookup('ansible.builtin.pipe', lab_certificate_command ~ ")
    command = yaml.safe_load(LAB_SECRETS_FILE.read_text())["lab_certificate_command"]
    assert command == "sh {{ lab_certificate_script | quote }} {{ lab_secrets_dir | quote }}"


def test_lab_certificate_script_writes_into_the_secrets_directory_only(tmp_path):
    secrets = tmp_path / "secrets"
    cert = subprocess.run(["sh", str(ROOT / "lab" / "certificate.sh"), str(secrets), "cert"],
                          capture_output=True, text=True, check=True).stdout
    again = subprocess.run(["sh", str(ROOT / "lab" / "certificate.sh"), str(secrets), "cert"],
                           capture_output=True, text=True, check=True).stdout
    key = subprocess.run(["sh", str(ROOT / "lab" / "certificate.sh"), str(secrets), "key"],
                         capture_output=True, text=True, check=True).stdout
    assert cert.startswith("-----BEGIN CERTIFICATE-----") and cert == again  # generated once
    assert "PRIVATE KEY-----" in key.splitlines()[0]
    assert sorted(p.name for p in secrets.iterdir()) == [".edge.lock", "edge.crt", "edge.key"]
    assert oct((secrets / "edge.key").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("name", SECRET_VARIABLES + TLS_VARIABLES)
def test_production_secret_comes_from_the_vault(name):
    assert yaml.safe_load(PRODUCTION_VARS.read_text())[name] == f"{{{{ vault_{name} }}}}"


def test_vault_example_lists_every_required_secret_with_placeholders_only():
    example = yaml.safe_load(VAULT_EXAMPLE.read_text())
    required = yaml.safe_load(PRODUCTION_VARS.read_text())["depotix_vault_variables"]
    assert set(required) <= set(example)
    assert set(required) == {f"vault_{name}" for name in SECRET_VARIABLES + TLS_VARIABLES}

    def leaves(value):
        return [v for item in value.values() for v in leaves(item)] if isinstance(value, dict) else [value]

    assert [v for v in leaves(example) if not re.fullmatch(r"<[^<>]+>", str(v))] == []


def test_vault_example_is_not_loaded_by_ansible():
    # Ansible reads group_vars files ending in .yml, .yaml or .json (or without an extension).
    assert VAULT_EXAMPLE.suffix == ".example"
