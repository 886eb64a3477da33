"""The settings file is the script's one source for what the role also knows; the package installed beside it.

A settings file without one of those values (written by an older role) is refused with
one line naming the key; the values it holds are the ones the script uses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import complete_record
from depotix_backup.settings import REQUIRED_KEYS

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "roles" / "backup" / "files"

ROLE_OWNED = ["lib_dir", "safety_suffix", "restore_marker", "keep_last", "keep_daily", "keep_weekly"]


def role_settings() -> dict:
    """Return backup_settings as the role defines it (vars/main.yml), unrendered."""
    return yaml.safe_load((REPO / "roles" / "backup" / "vars" / "main.yml").read_text())["backup_settings"]


def test_the_role_writes_every_setting_the_script_requires():
    assert set(REQUIRED_KEYS) <= set(role_settings())


def test_the_role_takes_those_values_from_its_own_variables():
    settings = role_settings()
    assert settings["lib_dir"] == "{{ backup_lib_dir }}"
    assert settings["safety_suffix"] == "{{ backup_safety_suffix }}"
    assert settings["restore_marker"] == "{{ backup_restore_marker_file }}"
    assert {settings[key] for key in ROLE_OWNED[3:]} == {f"{{{{ backup_{key} | int }}}}" for key in ROLE_OWNED[3:]}


def test_the_role_writes_the_time_limits_and_the_status_file_from_its_variables():
    settings = role_settings()
    assert settings["status_file"] == "{{ backup_status_file }}"
    for key in ("lock_wait_timeout", "dump_timeout", "docker_timeout"):
        assert settings[key] == f"{{{{ backup_{key} | int }}}}"


@pytest.mark.parametrize("key", ROLE_OWNED)
def test_a_settings_file_without_a_required_key_is_refused_naming_it(lab, key):
    lab.drop_setting(key)
    done = lab.run("list")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (f"depotix-backup: {lab.config_file} has no setting {key}: it was written by an older "
                           "backup role; rerun the backup role (site.yml) on this host.\n")


def test_an_empty_required_setting_is_refused_too(lab):
    lab.write_config(safety_suffix="")
    done = lab.run("list")
    assert done.returncode == 1 and "has no setting safety_suffix: " in done.stderr


def test_with_log_the_refusal_goes_to_the_log(lab, tmp_path):
    lab.drop_setting("restore_marker")
    log = tmp_path / "backup.log"
    done = lab.run("--log", str(log), "prune")
    assert done.returncode == 1 and done.stderr == ""
    assert "prune: FAILED: " in log.read_text() and "has no setting restore_marker: " in log.read_text()


def touch_dump(lab, name):
    (lab.directory / name).write_bytes(b"x")
    (lab.directory / f"{name}.sha256").write_text(f"0  {name}\n")
    (lab.directory / f"{name}.json").write_text(json.dumps(complete_record(name)))


def test_latest_skips_the_safety_suffix_the_settings_name(lab):
    lab.write_config(safety_suffix="before_undo")
    touch_dump(lab, "depotix_20260101T000000Z_2.0_before_restore.dump")
    touch_dump(lab, "depotix_20260102T000000Z_2.0_before_undo.dump")
    result = lab.run_json("offsite", "latest")  # no offsite copy configured: it only names the dump
    assert result["file"] == "depotix_20260101T000000Z_2.0_before_restore.dump"


def test_prune_keeps_the_dumps_named_by_the_marker_the_settings_name(lab, dumped, tmp_path):
    newest = dumped()["file"]
    old, stray = "depotix_20200101T000000Z_2.0.dump", "depotix_20200102T000000Z_2.0.dump"
    for name in (old, stray):
        for suffix in ("", ".sha256", ".json"):
            shutil.copyfile(lab.directory / f"{newest}{suffix}", lab.directory / f"{name}{suffix}")
    marker = tmp_path / "elsewhere" / "restore.json"
    marker.parent.mkdir()
    marker.write_text(json.dumps({"dump": old}))
    (lab.directory / ".restore-in-progress.json").write_text(json.dumps({"dump": stray}))  # not the one named
    lab.write_config(keep_last=0, keep_daily=0, keep_weekly=0, restore_marker=str(marker))
    result = lab.run_json("prune", "--dry-run")
    assert result["kept"][old] == ["restore in progress"] and result["delete"] == [stray]
    assert result["policy"] == {"keep_last": 0, "keep_daily": 0, "keep_weekly": 0}


def install_like_the_role(tmp_path: Path) -> tuple[Path, Path]:
    """Lay the files out as install.yml does: the script in sbin, the package and the ledger's rules in lib."""
    sbin, lib = tmp_path / "sbin", tmp_path / "lib"
    sbin.mkdir()
    shutil.copyfile(FILES / "depotix-backup.py", sbin / "depotix-backup")
    shutil.copytree(FILES / "depotix_backup", lib / "depotix_backup")
    shutil.copyfile(FILES / "release_ledger.py", lib / "release_ledger.py")
    return sbin / "depotix-backup", lib


def test_the_installed_script_finds_its_package_in_the_settings_lib_dir(lab, tmp_path):
    script, lib = install_like_the_role(tmp_path)
    lab.write_config(lib_dir=str(lib))
    done = lab.run("list", script=script)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["directory"] == str(lab.directory)


def test_the_installed_script_says_so_when_its_package_is_missing(lab, tmp_path):
    script, _ = install_like_the_role(tmp_path)
    lab.write_config(lib_dir=str(tmp_path / "nowhere"))
    done = lab.run("list", script=script)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1
    assert "cannot load the depotix_backup package" in done.stderr and "rerun the backup role" in done.stderr


def test_retention_follows_the_settings(lab, dumped):
    first = dumped()["file"]
    dumped()
    lab.write_config(keep_last=2, keep_daily=0, keep_weekly=0)
    assert first in lab.run_json("prune", "--dry-run")["kept"]
    lab.write_config(keep_last=1)
    assert lab.run_json("prune", "--dry-run")["delete"] == [first]

