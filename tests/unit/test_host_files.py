"""The host_files module: several directories and files in one task, on this machine's file system.

The module runs in-process through AnsibleModule against a temporary directory; ownership is
the test's own user (root in CI, so numeric ids that exist nowhere work as on a host).
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any, Dict

import host_files
import pytest
from ansible.module_utils.testing import patch_module_args

ME = str(os.getuid())
MY_GROUP = str(os.getgid())


def result_of(capsys: Any, args: Dict[str, Any], check_mode: bool = False) -> Dict[str, Any]:
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit):
        host_files.main()
    return json.loads(capsys.readouterr().out)


def mode_of(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def request(tmp_path: Path) -> Dict[str, Any]:
    return {
        "directories": [{"path": str(tmp_path / "etc" / "secrets"), "mode": "0711", "owner": ME, "group": MY_GROUP}],
        "files": [
            {"path": str(tmp_path / "etc" / "secrets" / "db_password"), "content": "s3cret-value", "mode": "0400",
             "owner": ME, "group": MY_GROUP},
            {"path": str(tmp_path / "etc" / "api.env"), "content": "A=1\n", "mode": "0600", "owner": ME,
             "group": MY_GROUP},
            {"path": str(tmp_path / "etc" / "bundle.zip"), "content_base64": base64.b64encode(b"PK\x03\x04\x00\xff").decode(),
             "mode": "0644", "owner": ME, "group": MY_GROUP},
        ],
    }


def test_first_run_creates_everything_in_order_and_a_second_changes_nothing(tmp_path: Path, capsys: Any) -> None:
    first = result_of(capsys, request(tmp_path))
    assert first["changed"] is True
    assert [c["path"] for c in first["changes"]] == [
        str(tmp_path / "etc" / "secrets"), str(tmp_path / "etc" / "secrets" / "db_password"),
        str(tmp_path / "etc" / "api.env"), str(tmp_path / "etc" / "bundle.zip")]
    assert all(c["what"] == ["created"] for c in first["changes"])
    assert (tmp_path / "etc" / "secrets" / "db_password").read_text() == "s3cret-value"
    assert (tmp_path / "etc" / "bundle.zip").read_bytes() == b"PK\x03\x04\x00\xff"
    assert mode_of(tmp_path / "etc" / "secrets") == "0o711"
    assert mode_of(tmp_path / "etc" / "secrets" / "db_password") == "0o400"
    assert mode_of(tmp_path / "etc" / "api.env") == "0o600"
    written = (tmp_path / "etc" / "api.env").stat().st_mtime_ns

    second = result_of(capsys, request(tmp_path))
    assert (second["changed"], second["changes"], second["checked"]) == (False, [], 4)
    assert (tmp_path / "etc" / "api.env").stat().st_mtime_ns == written


def test_drift_is_repaired_and_named(tmp_path: Path, capsys: Any) -> None:
    result_of(capsys, request(tmp_path))
    (tmp_path / "etc" / "api.env").write_text("A=2\n")
    (tmp_path / "etc" / "secrets" / "db_password").chmod(0o644)
    (tmp_path / "etc" / "secrets").chmod(0o755)

    again = result_of(capsys, request(tmp_path))

    assert again["changed"] is True
    assert {c["path"]: c["what"] for c in again["changes"]} == {
        str(tmp_path / "etc" / "secrets"): ["mode"],
        str(tmp_path / "etc" / "secrets" / "db_password"): ["mode"],
        str(tmp_path / "etc" / "api.env"): ["content"],
    }
    assert (tmp_path / "etc" / "api.env").read_text() == "A=1\n"
    assert mode_of(tmp_path / "etc" / "secrets" / "db_password") == "0o400"


def test_a_longer_file_with_the_same_start_is_rewritten(tmp_path: Path, capsys: Any) -> None:
    result_of(capsys, request(tmp_path))
    (tmp_path / "etc" / "api.env").write_text("A=1\nB=2\n")
    again = result_of(capsys, request(tmp_path))
    assert {c["path"]: c["what"] for c in again["changes"]} == {str(tmp_path / "etc" / "api.env"): ["content"]}
    assert (tmp_path / "etc" / "api.env").read_text() == "A=1\n"


def test_check_mode_reports_and_writes_nothing(tmp_path: Path, capsys: Any) -> None:
    result = result_of(capsys, request(tmp_path), check_mode=True)
    assert result["changed"] is True and len(result["changes"]) == 4
    assert not (tmp_path / "etc").exists()


def test_no_content_is_returned(tmp_path: Path, capsys: Any) -> None:
    out = json.dumps(result_of(capsys, request(tmp_path)))
    assert "s3cret-value" not in out


def test_a_bad_entry_fails_before_anything_is_written(tmp_path: Path, capsys: Any) -> None:
    args = request(tmp_path)
    args["files"].append({"path": str(tmp_path / "etc" / "x"), "content": "some text", "content_base64": "c29tZSB0ZXh0",
                          "mode": "0644", "owner": ME, "group": MY_GROUP})
    result = result_of(capsys, args)
    assert result["failed"] is True and "exactly one of content and content_base64" in result["msg"]
    assert not (tmp_path / "etc").exists()


def test_a_file_whose_directory_is_missing_fails_naming_it_and_what_was_done(tmp_path: Path, capsys: Any) -> None:
    args = {"files": [
        {"path": str(tmp_path / "a"), "content": "first file", "mode": "0644", "owner": ME, "group": MY_GROUP},
        {"path": str(tmp_path / "missing" / "b"), "content": "second file", "mode": "0644", "owner": ME, "group": MY_GROUP},
    ]}
    result = result_of(capsys, args)
    assert result["failed"] is True
    assert "missing/b: its directory does not exist" in result["msg"]
    assert f"Paths changed before this one: {tmp_path / 'a'}." in result["msg"]


@pytest.mark.parametrize("mode", ["rw", "99", "17777"])
def test_a_mode_that_is_not_octal_is_refused(tmp_path: Path, capsys: Any, mode: str) -> None:
    result = result_of(capsys, {"directories": [{"path": str(tmp_path / "d"), "mode": mode}]})
    assert result["failed"] is True and "mode" in result["msg"]
    assert not (tmp_path / "d").exists()


def test_an_unknown_owner_is_refused(tmp_path: Path, capsys: Any) -> None:
    result = result_of(capsys, {"directories": [{"path": str(tmp_path / "d"), "mode": "0755",
                                                  "owner": "no-such-user-depotix"}]})
    assert result["failed"] is True and "no user named 'no-such-user-depotix'" in result["msg"]


def test_a_path_that_is_a_directory_is_not_overwritten_by_a_file(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "d").mkdir()
    result = result_of(capsys, {"files": [{"path": str(tmp_path / "d"), "content": "x", "mode": "0644",
                                           "owner": ME, "group": MY_GROUP}]})
    assert result["failed"] is True and "is not a regular file" in result["msg"]
    assert (tmp_path / "d").is_dir()


def test_a_replaced_file_leaves_no_temporary_file_behind(tmp_path: Path, capsys: Any) -> None:
    result_of(capsys, request(tmp_path))
    (tmp_path / "etc" / "api.env").write_text("old\n")
    result_of(capsys, request(tmp_path))
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["api.env", "bundle.zip", "secrets"]


def test_a_file_written_by_someone_else_is_created_empty_then_only_its_mode_is_kept(tmp_path: Path, capsys: Any) -> None:
    log = {"path": str(tmp_path / "backup.log"), "keep_content": True, "mode": "0600", "owner": ME, "group": MY_GROUP}
    first = result_of(capsys, {"files": [log]})
    assert first["changes"] == [{"path": str(tmp_path / "backup.log"), "what": ["created"]}]
    assert (tmp_path / "backup.log").read_bytes() == b"" and mode_of(tmp_path / "backup.log") == "0o600"
    (tmp_path / "backup.log").write_text("a line the script wrote\n")
    (tmp_path / "backup.log").chmod(0o644)
    again = result_of(capsys, {"files": [log]})
    assert again["changes"] == [{"path": str(tmp_path / "backup.log"), "what": ["mode"]}]
    assert (tmp_path / "backup.log").read_text() == "a line the script wrote\n"
    assert result_of(capsys, {"files": [log]})["changed"] is False


def test_keep_content_with_a_content_is_refused(tmp_path: Path, capsys: Any) -> None:
    entry = {"path": str(tmp_path / "x.log"), "keep_content": True, "content": "some text", "mode": "0600",
             "owner": ME, "group": MY_GROUP}
    result = result_of(capsys, {"files": [entry]})
    assert result["failed"] is True and "keep_content takes no content" in result["msg"]


def config_request(tmp_path: Path, content: str) -> Dict[str, Any]:
    # The check: the new content must start with "ok" (a stand-in for haproxy -c -f %s).
    return {"files": [{"path": str(tmp_path / "edge.cfg"), "content": content, "mode": "0644", "owner": ME,
                       "group": MY_GROUP, "validate": "grep -q ^ok %s"}]}


def test_validate_checks_the_new_content_before_it_replaces_the_file(tmp_path: Path, capsys: Any) -> None:
    assert result_of(capsys, config_request(tmp_path, "ok 1\n"))["changed"] is True
    assert (tmp_path / "edge.cfg").read_text() == "ok 1\n"

    refused = result_of(capsys, config_request(tmp_path, "broken\n"))

    assert refused["failed"] is True
    assert "edge.cfg: the new content fails validation (exit 1, grep -q ^ok %s)" in refused["msg"]
    assert "the file was left as it was" in refused["msg"]
    assert (tmp_path / "edge.cfg").read_text() == "ok 1\n"  # the one in use, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge.cfg"]  # no temporary file left
    # Unchanged content is not validated again (a run that changes nothing runs no command).
    again = config_request(tmp_path, "ok 1\n")
    again["files"][0]["validate"] = "false %s"
    assert result_of(capsys, again)["changed"] is False


def test_validate_without_the_placeholder_is_refused_before_anything_is_written(tmp_path: Path, capsys: Any) -> None:
    args = config_request(tmp_path, "ok\n")
    args["files"][0]["validate"] = "haproxy -c"
    result = result_of(capsys, args)
    assert result["failed"] is True and "validate must contain %s" in result["msg"]
    assert not (tmp_path / "edge.cfg").exists()
