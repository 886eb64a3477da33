"""No lab secret in the output of any ansible-playbook run a scenario kept.

molecule/_shared/tasks/run_playbook.yml keeps the whole output of every nested run as
<run_name>.log in the scenario's ephemeral directory. These tests read the secrets the
lab generated for the scenario (its $DEPOTIX_SECRETS_DIR) and search every such log for
each of them, as written and base64-encoded (what slurp or a file transfer would show).

Any scenario reuses them as they are; its molecule.yml adds:

    verifier:
      additional_files_or_dirs:
        - ../../_shared/test_no_secret_leaked.py

A failure names the secret and where it was found, never the value.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

# The lab's generated secrets (inventories/lab/group_vars/all/secrets.yml), by file name.
LAB_SECRETS = ("postgres_superuser_password", "postgres_password", "api_secret_key")
SHORTEST_SECRET = 16


def ephemeral_dir() -> Path:
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


def secrets_dir() -> Path:
    # The scenario's own secrets (.config/molecule/config.yml points DEPOTIX_SECRETS_DIR
    # there for the provisioner), whatever DEPOTIX_SECRETS_DIR the caller's shell has.
    return ephemeral_dir() / "secrets"


def lab_secret(name: str) -> str:
    """Return one generated secret (the password lookup may append ` salt=...`)."""
    return (secrets_dir() / name).read_text().split(" salt=")[0].split(" ident=")[0].strip()


def run_logs() -> list[Path]:
    """Return the kept outputs of the scenario's nested ansible-playbook runs."""
    return sorted(ephemeral_dir().glob("*.log"))


def forms_of(secret: str) -> list[str]:
    """Return the ways a secret can show up in output: as is, and base64-encoded."""
    return [secret, base64.b64encode(secret.encode()).decode()]


def places_holding(secret: str, logs: list[Path]) -> list[str]:
    """Return `log:line` for every line of the logs that holds the secret in any form."""
    forms = forms_of(secret)
    return [f"{log.name}:{number}"
            for log in logs
            for number, line in enumerate(log.read_text(errors="replace").splitlines(), start=1)
            if any(form in line for form in forms)]


def test_the_scenario_kept_the_output_of_its_runs():
    logs = run_logs()
    assert logs, f"no *.log in {ephemeral_dir()}: run the entry playbooks through run_playbook.yml"
    # A complete run ends with its recap; one killed on purpose (run_playbook_killed.yml) says so.
    unfinished = [log.name for log in logs
                  if not any(end in log.read_text(errors="replace") for end in ("PLAY RECAP", "kill_during: killed"))]
    assert unfinished == []


def test_the_search_covers_verbose_output():
    # -vvv shows module arguments and results: what a leak would be in. Connection lines
    # such as "ESTABLISH DOCKER CONNECTION" appear only at -vvv.
    verbose = [log.name for log in run_logs() if "ESTABLISH DOCKER CONNECTION" in log.read_text(errors="replace")]
    assert verbose, "no kept run was made with -vvv"


# The assertions below compare plain local values on purpose: pytest explains a failed
# assertion by printing the arguments of any call in it, which would print the secret.


@pytest.mark.parametrize("name", LAB_SECRETS)
def test_the_lab_generated_the_secret(name):
    length = len(lab_secret(name))
    assert length >= SHORTEST_SECRET


def edge_key_lines() -> list[str]:
    """Return the base64 lines of the edge's private key (lab/certificate.sh), which runs would show."""
    pem = (secrets_dir() / "edge.key").read_text()
    return [line.strip() for line in pem.splitlines() if line.strip() and not line.startswith("-----")]


def test_no_run_output_holds_the_edge_key():
    lines, logs = edge_key_lines(), run_logs()
    assert lines and min(len(line) for line in lines) >= SHORTEST_SECRET
    leaked = [number for number, line in enumerate(lines) if places_holding(line, logs)]
    assert leaked == [], "lines %s of the edge's private key leaked into the run output" % leaked


@pytest.mark.parametrize("name", LAB_SECRETS)
def test_no_run_output_holds_the_secret(name):
    secret = lab_secret(name)
    length, logs = len(secret), run_logs()
    assert length >= SHORTEST_SECRET, f"{name} is too short to search for"
    places = places_holding(secret, logs)
    assert places == [], f"{name} leaked into the run output"
