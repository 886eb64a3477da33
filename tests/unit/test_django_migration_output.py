"""Pieces of the protocol, probe and runner that need no Django: output parsing, ghosts, command lines."""

from __future__ import annotations

from ansible.module_utils.django_migration_docker import (
    ProbeOptions,
    exec_runner,
    grace_seconds,
    run_runner,
)
from ansible.module_utils.django_migration_probe import blocking_ghosts
from ansible.module_utils.django_migration_protocol import BEGIN, END, parse_output, render


def test_result_is_found_between_sentinels_despite_stray_output() -> None:
    stdout = "noise {\n" + render({"ok": True, "value": [1]}) + "more noise\n"

    assert parse_output(stdout) == {"ok": True, "value": [1], "protocol": 1}


def test_truncated_or_missing_result_is_none() -> None:
    assert parse_output("Traceback (most recent call last):\n") is None
    assert parse_output('%s\n{"ok": true' % BEGIN) is None
    assert parse_output("%s\nnot json\n%s\n" % (BEGIN, END)) is None


def test_ghosts_above_a_numbered_target_block_and_older_ones_do_not() -> None:
    ghosts = ["0001_squashed_away", "0008_add_idempotency_and_constraints", "custom_unnumbered"]

    assert blocking_ghosts(ghosts, "0007_populate_customer_numbers") == [
        "0008_add_idempotency_and_constraints",
        "custom_unnumbered",
    ]
    assert blocking_ghosts(ghosts, None) == sorted(ghosts)


def test_exec_command_line_sends_source_on_stdin_to_python_in_workdir() -> None:
    runner = exec_runner(ProbeOptions(container="api", workdir="/srv/app", python="/venv/bin/python"))

    argv = runner.argv("docker", {"action": "query"})

    assert argv == ["docker", "exec", "-i", "-w", "/srv/app", "api", "/venv/bin/python", "-", '{"action": "query"}']


def test_run_command_line_replaces_the_entrypoint_and_never_pulls() -> None:
    runner = run_runner(ProbeOptions(image="api:2.0", network="appnet", env_file="/etc/api.env"))

    argv = runner.argv("docker", {"action": "query"})

    assert argv[:4] == ["docker", "run", "--rm", "-i"]
    assert argv[argv.index("--entrypoint") + 1] == "python3"
    assert argv[argv.index("--pull") + 1] == "never"
    assert argv[-3:] == ["api:2.0", "-", '{"action": "query"}']
    assert argv.index("--env-file") < argv.index("api:2.0")


def test_grace_after_timeout_grows_with_it_within_bounds() -> None:
    assert [grace_seconds(value) for value in (1, 60, 300, 3600)] == [1, 6, 30, 30]
