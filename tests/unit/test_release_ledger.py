"""The release ledger: which release runs and which one a rollback goes back to, and how entries are recorded.

The stack logic and the file handling are tested in module_utils/release_ledger.py;
the module runs in-process through AnsibleModule, and once through ``ansible``
itself so AnsiballZ is shown to ship the shared module_utils.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import release_ledger
from ansible.module_utils import release_ledger as ledger
from ansible.module_utils.release_ledger import (
    LedgerError,
    ledger_summary,
    load_entries,
    new_entry,
    release_stack,
    repeats_current,
    write_entries,
)
from ansible.module_utils.testing import patch_module_args
from conftest import LIBRARY, MODULE_UTILS

ANSIBLE = Path(sys.executable).with_name("ansible")


def deploy(release: str, outcome: str = "ok", action: str = "deploy", image_id: str = "") -> Dict[str, Any]:
    return new_entry(
        release=release,
        image="depotix/api:%s" % release,
        image_id=image_id or "sha256:" + release,
        action=action,
        outcome=outcome,
    )


def releases(entries: List[Dict[str, Any]]) -> List[str]:
    return [entry["release"] for entry in entries]


# --- current and previous -------------------------------------------------------------------


def test_deploys_push_and_a_rollback_pops_back_to_its_release() -> None:
    entries = [deploy("1.0"), deploy("2.0"), deploy("2.1"), deploy("2.0", action="rollback")]

    summary = ledger_summary(entries)

    assert summary["current"]["release"] == "2.0"
    assert summary["current"]["action"] == "rollback"
    assert summary["previous"]["release"] == "1.0"
    assert summary["history"] == ["1.0", "2.0"]
    assert summary["entries"] == entries


def test_failed_entries_are_ignored() -> None:
    entries = [deploy("1.0"), deploy("2.0", outcome="failed"), deploy("2.1", outcome="failed")]

    summary = ledger_summary(entries)

    assert summary["current"]["release"] == "1.0"
    assert summary["previous"] is None
    assert summary["history"] == ["1.0"]


def test_failed_rollback_does_not_pop_the_release_in_force() -> None:
    entries = [deploy("1.0"), deploy("2.0"), deploy("1.0", action="rollback", outcome="failed")]

    assert releases(release_stack(entries)) == ["1.0", "2.0"]


def test_redeploying_the_current_release_replaces_its_entry_instead_of_stacking_it() -> None:
    entries = [deploy("1.0"), deploy("2.0", image_id="sha256:old"), deploy("2.0", image_id="sha256:rebuilt")]

    stack = release_stack(entries)

    assert releases(stack) == ["1.0", "2.0"]
    assert stack[-1]["image_id"] == "sha256:rebuilt"


def test_deploying_again_after_a_rollback_pushes_on_top_of_the_release_rolled_back_to() -> None:
    entries = [deploy("1.0"), deploy("2.0"), deploy("2.1"), deploy("2.0", action="rollback"), deploy("2.2")]

    summary = ledger_summary(entries)

    assert summary["history"] == ["1.0", "2.0", "2.2"]
    assert summary["previous"]["release"] == "2.0"


def test_fresh_ledger_has_no_current_and_no_previous_release() -> None:
    assert ledger_summary([]) == {"entries": [], "current": None, "previous": None, "history": []}


@pytest.mark.parametrize(
    "entry, repeats",
    [
        (deploy("2.0"), True),
        (deploy("2.0", image_id="sha256:rebuilt"), False),
        (deploy("2.1"), False),
        (deploy("2.0", outcome="failed"), False),
    ],
    ids=["same-release-same-image", "rebuilt-image", "other-release", "failed-attempt"],
)
def test_only_a_good_entry_for_the_current_release_and_image_repeats_it(entry: Dict, repeats: bool) -> None:
    assert repeats_current([deploy("1.0"), deploy("2.0")], entry) is repeats


# --- reading and writing the file -------------------------------------------------------------


@pytest.mark.parametrize("shape", ["list", "object"])
def test_ledger_is_read_as_a_list_or_an_object_with_entries(tmp_path: Path, shape: str) -> None:
    entries = [deploy("1.0"), deploy("2.0")]
    path = tmp_path / "releases.json"
    path.write_text(json.dumps(entries if shape == "list" else {"entries": entries}))

    assert load_entries(str(path)) == entries


@pytest.mark.parametrize("content", ["not json", "", '{"releases": []}', "[1, 2]", "null"])
def test_file_that_is_not_a_ledger_is_reported_not_guessed(tmp_path: Path, content: str) -> None:
    path = tmp_path / "releases.json"
    path.write_text(content)

    with pytest.raises(LedgerError, match="ledger %s" % path):
        load_entries(str(path))


def test_missing_ledger_is_an_empty_ledger(tmp_path: Path) -> None:
    assert load_entries(str(tmp_path / "releases.json")) == []


def test_write_replaces_the_file_by_rename_so_a_reader_sees_the_old_or_the_new_ledger(tmp_path: Path) -> None:
    path = tmp_path / "releases.json"
    write_entries(str(path), [deploy("1.0")], "0640")
    with path.open(encoding="utf-8") as reader:
        write_entries(str(path), [deploy("1.0"), deploy("2.0")], "0600")

        assert releases(json.load(reader)["entries"]) == ["1.0"]
    assert releases(load_entries(str(path))) == ["1.0", "2.0"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(item.name for item in tmp_path.iterdir()) == ["releases.json"]


def test_failed_write_keeps_the_previous_ledger_whole_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "releases.json"
    write_entries(str(path), [deploy("1.0")], "0640")
    before = path.read_bytes()

    def dump_half_then_fail(data: Any, handle: Any, **kwargs: Any) -> None:
        handle.write('{"entries": [')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ledger.json, "dump", dump_half_then_fail)
    with pytest.raises(OSError):
        write_entries(str(path), [deploy("1.0"), deploy("2.0")], "0640")

    assert path.read_bytes() == before
    assert sorted(item.name for item in tmp_path.iterdir()) == ["releases.json"]


# A process that dies (SIGKILL) in the middle of write_entries: half the new ledger written to the
# temporary file, or the temporary file complete and the rename not done yet.
CRASHING_WRITER = r"""
import json, os, signal, sys
sys.path.insert(0, sys.argv[1])
import release_ledger as ledger

def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)

def dump_half_then_die(data, handle, **kwargs):
    text = json.dumps(data, **kwargs)
    handle.write(text[: len(text) // 2])
    handle.flush()
    os.fsync(handle.fileno())
    die()

if sys.argv[4] == "mid-write":
    ledger.json.dump = dump_half_then_die
else:
    ledger.os.replace = lambda source, target: die()
ledger.write_entries(sys.argv[2], json.loads(sys.argv[3]), "0640")
"""


@pytest.mark.parametrize("crash", ["mid-write", "before-rename"])
def test_crash_while_writing_leaves_the_previous_ledger_whole(tmp_path: Path, crash: str) -> None:
    path = tmp_path / "releases.json"
    old = [deploy("1.0"), deploy("2.0")]
    write_entries(str(path), old, "0640")
    before = path.read_bytes()

    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(MODULE_UTILS), str(path), json.dumps(old + [deploy("2.1")]), crash],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # The crash happened, with the new ledger (or half of it) in a temporary file beside the old one.
    assert crashed.returncode == -9, crashed.stderr
    leftovers = [item for item in tmp_path.iterdir() if item.name != "releases.json"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".releases.")
    written = leftovers[0].read_text()
    if crash == "before-rename":
        assert json.loads(written)["entries"][-1]["release"] == "2.1"
    else:
        with pytest.raises(ValueError):
            json.loads(written)
    # The ledger is the old one, byte for byte, and the next write goes through.
    assert path.read_bytes() == before
    assert load_entries(str(path)) == old
    write_entries(str(path), old + [deploy("2.2")], "0640")
    assert releases(load_entries(str(path))) == ["1.0", "2.0", "2.2"]


def test_write_fsyncs_the_directory_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: List[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(source: str, target: str) -> None:
        synced.append("rename")
        real_replace(source, target)

    monkeypatch.setattr(ledger.os, "fsync", fsync)
    monkeypatch.setattr(ledger.os, "replace", replace)
    write_entries(str(tmp_path / "releases.json"), [deploy("1.0")], "0640")

    assert synced == ["file", "rename", "directory"]


# --- the module ------------------------------------------------------------------------------


def run_ledger_module(capsys: pytest.CaptureFixture, check_mode: bool = False, **args: Any) -> Dict[str, Any]:
    """Run release_ledger with ``args``; return its JSON result (``failed`` set on fail_json)."""
    args.update(_ansible_check_mode=check_mode)
    with patch_module_args(args), pytest.raises(SystemExit):
        release_ledger.main()
    return json.loads(capsys.readouterr().out)


RECORD_2_0 = dict(
    state="recorded",
    release="2.0",
    image="depotix/api:2.0",
    image_id="sha256:2.0",
    leaves={"inventory": ["0008_add_idempotency_and_constraints"]},
    skip_if_current=True,
)


def test_record_in_check_mode_then_for_real_then_again_changes_once(tmp_path: Path, capsys) -> None:
    path = tmp_path / "releases.json"
    write_entries(str(path), [deploy("1.0")], "0640")
    before = path.read_bytes()

    planned = run_ledger_module(capsys, check_mode=True, path=str(path), **RECORD_2_0)
    unchanged = path.read_bytes()
    recorded = run_ledger_module(capsys, path=str(path), **RECORD_2_0)
    again = run_ledger_module(capsys, path=str(path), **RECORD_2_0)

    assert planned["changed"] is True
    assert planned["current"]["release"] == "2.0"
    assert unchanged == before
    assert recorded["changed"] is True
    assert recorded["entry"]["leaves"] == RECORD_2_0["leaves"]
    assert (recorded["current"]["release"], recorded["previous"]["release"]) == ("2.0", "1.0")
    assert again["changed"] is False
    assert releases(load_entries(str(path))) == ["1.0", "2.0"]


def test_check_mode_on_a_fresh_host_creates_no_ledger(tmp_path: Path, capsys) -> None:
    path = tmp_path / "releases.json"

    result = run_ledger_module(capsys, check_mode=True, path=str(path), **RECORD_2_0)

    assert result["changed"] is True
    assert result["history"] == ["2.0"]
    assert not path.exists()


def test_without_skip_if_current_the_same_release_is_recorded_again(tmp_path: Path, capsys) -> None:
    path = tmp_path / "releases.json"
    run_ledger_module(capsys, path=str(path), **RECORD_2_0)

    result = run_ledger_module(capsys, path=str(path), **dict(RECORD_2_0, skip_if_current=False, action="site"))

    assert result["changed"] is True
    assert result["history"] == ["2.0"]
    assert [entry["action"] for entry in load_entries(str(path))] == ["deploy", "site"]


def test_read_reports_current_and_previous_and_changes_nothing(tmp_path: Path, capsys) -> None:
    path = tmp_path / "releases.json"
    write_entries(str(path), [deploy("1.0"), deploy("2.0"), deploy("2.1"), deploy("2.0", action="rollback")], "0640")
    before = path.read_bytes()

    result = run_ledger_module(capsys, path=str(path))

    assert result["changed"] is False
    assert (result["current"]["release"], result["previous"]["release"]) == ("2.0", "1.0")
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "content, record, error",
    [
        (None, None, None),
        ('{"from_release": "2.1", "to_release": "2.0"}', {"from_release": "2.1", "to_release": "2.0"}, None),
        ('{"from_release": ', None, "Expecting value"),
        ('["2.0"]', None, "not a JSON object"),
    ],
    ids=["none", "a record", "cut short", "not an object"],
)
def test_read_also_reads_the_record_of_a_change_in_progress_in_the_same_task(
    tmp_path: Path, capsys, content: Any, record: Any, error: Any
) -> None:
    path = tmp_path / "releases.json"
    write_entries(str(path), [deploy("1.0"), deploy("2.0")], "0640")
    in_progress = tmp_path / "rollback-in-progress.json"
    if content is not None:
        in_progress.write_text(content)

    result = run_ledger_module(capsys, path=str(path), in_progress=str(in_progress))

    assert result["changed"] is False and result["current"]["release"] == "2.0"
    assert result["in_progress"] == record
    if error is None:
        assert result["in_progress_error"] is None
    else:
        assert result["in_progress_error"].startswith(str(in_progress)) and error in result["in_progress_error"]
    assert "in_progress" not in run_ledger_module(capsys, path=str(path))


def test_file_that_is_not_a_ledger_fails_the_module_and_is_left_alone(tmp_path: Path, capsys) -> None:
    path = tmp_path / "releases.json"
    path.write_text('{"releases": ["1.0"]}')

    result = run_ledger_module(capsys, path=str(path), **RECORD_2_0)

    assert result["failed"]
    assert result["msg"].startswith("ledger %s is neither a list of entries nor an object" % path)
    assert "restore it from a backup or move it aside" in result["msg"]
    assert path.read_text() == '{"releases": ["1.0"]}'


def test_unwritable_ledger_location_fails_saying_what_to_check(tmp_path: Path, capsys) -> None:
    path = tmp_path / "no-such-directory" / "releases.json"

    result = run_ledger_module(capsys, path=str(path), **RECORD_2_0)

    assert result["failed"]
    assert result["msg"].startswith("cannot write %s: No such file or directory" % path)


def test_recorded_needs_a_release(tmp_path: Path, capsys) -> None:
    result = run_ledger_module(capsys, path=str(tmp_path / "releases.json"), state="recorded")

    assert result["failed"]
    assert "state is recorded but all of the following are missing: release" in result["msg"]


def test_documented_options_match_the_argument_spec(module_docs: Dict[str, Any]) -> None:
    documented = module_docs["release_ledger"]["doc"]["options"]

    assert set(documented) == set(release_ledger.ARGUMENT_SPEC)
    for name, spec in release_ledger.ARGUMENT_SPEC.items():
        assert documented[name]["type"] == spec["type"], name
        assert documented[name].get("default") == spec.get("default"), name
        assert documented[name].get("choices") == spec.get("choices"), name
        assert bool(documented[name].get("required")) == bool(spec.get("required")), name


def test_ansible_runs_the_module_with_the_shared_ledger_code(tmp_path: Path) -> None:
    path = tmp_path / "releases.json"
    write_entries(str(path), [deploy("1.0")], "0640")
    (tmp_path / "ansible.cfg").write_text("[defaults]\nlibrary = {}\nmodule_utils = {}\n".format(LIBRARY, MODULE_UTILS))
    args = "path={} state=recorded release=2.0 image_id=sha256:2.0 skip_if_current=true".format(path)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    )

    completed = subprocess.run(
        # The interpreter is set explicitly: auto-detection may pick a broken pyenv shim on this controller.
        [
            str(ANSIBLE),
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-m",
            "release_ledger",
            "-a",
            args,
            "-e",
            "ansible_python_interpreter=%s" % sys.executable,
        ],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=env,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads(completed.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["changed"] is True
    assert (result["current"]["release"], result["previous"]["release"]) == ("2.0", "1.0")
    assert releases(load_entries(str(path))) == ["1.0", "2.0"]
    assert "[WARNING]" not in completed.stderr, completed.stderr
