"""A production run stops on the controller, before any host is touched, when its vault
is missing, not encrypted, incomplete, or cannot be decrypted; a good vault reaches the
roles' variables.

Each run uses a copy of inventories/production whose host has an address nothing answers
on: had a play reached the host, the output would name it (UNREACHABLE).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
import yaml
from conftest import PRODUCTION_HOST, ROOT, AnsibleLoader, copy_of_production, run

VAULT = Path("group_vars/all/vault.yml")
PREFLIGHT = "playbooks/preflight/check_vault.yml"


def entry_playbooks() -> list[str]:
    """Return the entry playbooks (the YAML files at the root that hold plays)."""
    found = []
    for path in sorted(ROOT.glob("*.yml")):
        document = yaml.load(path.read_text(), Loader=AnsibleLoader)
        if isinstance(document, list) and any(isinstance(p, dict) and "hosts" in p for p in document):
            found.append(path.name)
    return found


ENTRY_PLAYBOOKS = entry_playbooks()
# Made at run time: values written in this file would be secrets to the secret scan.
REAL_SECRETS = {
    "vault_postgres_superuser_password": secrets.token_hex(16),
    "vault_postgres_password": secrets.token_hex(16),
    "vault_api_secret_key": secrets.token_hex(25),
    # The check asks for real values, not PEM: the edge role checks the PEM on its own.
    "vault_edge_tls_certificate": secrets.token_hex(16),
    "vault_edge_tls_key": secrets.token_hex(16),
}


def write_password(path: Path, password: str) -> Path:
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def encrypt(inventory: Path, content: str, password_file: Path) -> None:
    vault = inventory / VAULT
    vault.write_text(content)
    done = run(["ansible-vault", "encrypt", "--vault-password-file", str(password_file), str(vault)])
    assert done.returncode == 0, done.stdout


def vault_text(secrets: dict[str, str]) -> str:
    return "---\n" + "".join(f'{name}: "{value}"\n' for name, value in secrets.items())


def assert_stopped_before_any_host(result) -> None:
    assert result.returncode != 0, result.stdout
    assert PRODUCTION_HOST not in result.stdout, "a play reached the host"


def test_there_are_entry_playbooks_to_check():
    assert {"site.yml", "deploy.yml", "rollback.yml"} <= set(ENTRY_PLAYBOOKS)


@pytest.mark.parametrize("playbook", ENTRY_PLAYBOOKS)
def test_entry_playbook_checks_the_vault_first(playbook):
    first = yaml.load((ROOT / playbook).read_text(), Loader=AnsibleLoader)[0]
    assert first.get("ansible.builtin.import_playbook", first.get("import_playbook")) == PREFLIGHT


@pytest.fixture
def passwords(tmp_path: Path) -> tuple[Path, Path]:
    """Return (right, wrong) vault password files, outside the inventory."""
    return write_password(tmp_path / "right.pass", "correct horse"), write_password(tmp_path / "wrong.pass", "nope")


@pytest.mark.parametrize("playbook", ENTRY_PLAYBOOKS)
def test_run_without_the_vault_stops_before_any_host_saying_how_to_create_it(production_copy, playbook):
    result = run(["ansible-playbook", "-i", str(production_copy), playbook])
    assert_stopped_before_any_host(result)
    assert f"The vault {production_copy / VAULT} does not exist" in result.stdout
    assert "ansible-vault encrypt" in result.stdout


@pytest.mark.parametrize("playbook", ENTRY_PLAYBOOKS)
def test_run_with_a_wrong_vault_password_stops_before_any_host(production_copy, passwords, playbook):
    right, wrong = passwords
    encrypt(production_copy, vault_text(REAL_SECRETS), right)
    result = run(["ansible-playbook", "-i", str(production_copy), "--vault-password-file", str(wrong),
                  playbook])
    assert_stopped_before_any_host(result)
    assert "Decryption failed (no vault secrets were found that could decrypt)" in result.stdout


def test_run_without_a_vault_password_stops_before_any_host(production_copy, passwords):
    right, _ = passwords
    encrypt(production_copy, vault_text(REAL_SECRETS), right)
    result = run(["ansible-playbook", "-i", str(production_copy), "site.yml"])
    assert_stopped_before_any_host(result)
    assert "Attempting to decrypt but no vault secrets found" in result.stdout


def test_run_with_a_vault_in_the_clear_stops_before_any_host(production_copy):
    (production_copy / VAULT).write_text(vault_text(REAL_SECRETS))
    result = run(["ansible-playbook", "-i", str(production_copy), "site.yml"])
    assert_stopped_before_any_host(result)
    assert f"The vault {production_copy / VAULT} is not encrypted" in result.stdout


def test_run_with_the_example_placeholders_stops_before_any_host_naming_them(production_copy, passwords):
    right, _ = passwords
    example = (production_copy / VAULT).with_name("vault.yml.example").read_text()
    encrypt(production_copy, example, right)
    result = run(["ansible-playbook", "-i", str(production_copy), "--vault-password-file", str(right), "site.yml"])
    assert_stopped_before_any_host(result)
    assert ("does not set vault_postgres_superuser_password, vault_postgres_password, vault_api_secret_key, "
            "vault_edge_tls_certificate, vault_edge_tls_key to a real value") in result.stdout


def test_run_with_a_vault_lacking_a_secret_stops_before_any_host_naming_it(production_copy, passwords):
    right, _ = passwords
    encrypt(production_copy, vault_text({k: v for k, v in REAL_SECRETS.items() if k != "vault_api_secret_key"}),
            right)
    result = run(["ansible-playbook", "-i", str(production_copy), "--vault-password-file", str(right), "site.yml"])
    assert_stopped_before_any_host(result)
    assert "does not set vault_api_secret_key to a real value" in result.stdout


def test_a_good_vault_passes_the_check(production_copy, passwords):
    right, _ = passwords
    encrypt(production_copy, vault_text(REAL_SECRETS), right)
    result = run(["ansible-playbook", "-i", str(production_copy), "--vault-password-file", str(right),
                  "playbooks/preflight/check_vault.yml"])
    assert result.returncode == 0, result.stdout
    assert "localhost                  : ok=" in result.stdout


@pytest.fixture(scope="module")
def values_on_the_host(tmp_path_factory) -> dict[str, str]:
    """Return what a few variables are on the production host, with a good vault.

    One ad-hoc debug for all of them: it runs on the controller, the host is never contacted.
    """
    tmp_path = tmp_path_factory.mktemp("values")
    inventory = copy_of_production(tmp_path)
    right = write_password(tmp_path / "right.pass", "correct horse")
    encrypt(inventory, vault_text(REAL_SECRETS), right)
    names = list(EXPECTED_ON_THE_HOST)
    result = run(["ansible", PRODUCTION_HOST, "-i", str(inventory), "--vault-password-file", str(right),
                  "-m", "ansible.builtin.debug", "-a", "msg={{ [%s] | join('|') }}" % ", ".join(names)])
    assert result.returncode == 0, result.stdout
    shown = re.search(r'"msg": "([^"]*)"', result.stdout)
    assert shown, result.stdout
    return dict(zip(names, shown.group(1).split("|")))


EXPECTED_ON_THE_HOST = {
    "postgres_superuser_password": REAL_SECRETS["vault_postgres_superuser_password"],
    "postgres_password": REAL_SECRETS["vault_postgres_password"],
    # Through the root group_vars: the API connects with the application role's password.
    "api_db_password": REAL_SECRETS["vault_postgres_password"],
    "api_secret_key": REAL_SECRETS["vault_api_secret_key"],
    "postgres_image": "postgres:16",
    "api_image_source": "build",
    "postgres_bind_address": "127.0.0.1",
    "api_bind_address": "127.0.0.1",
    "ansible_user": "deploy",
}


@pytest.mark.parametrize("variable", EXPECTED_ON_THE_HOST)
def test_vault_and_production_values_reach_the_host(values_on_the_host, variable):
    assert values_on_the_host[variable] == EXPECTED_ON_THE_HOST[variable]


def test_the_production_inventory_in_the_repository_has_no_vault_in_the_clear():
    vault = ROOT / "inventories" / "production" / VAULT
    if vault.exists():
        assert vault.read_text().startswith("$ANSIBLE_VAULT;"), f"{vault} is not encrypted"

