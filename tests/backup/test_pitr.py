"""Point-in-time recovery with pgBackRest: the logic that needs no pgbackrest binary, and its monitoring metrics.

What the repository covers comes from `pgbackrest info --output=json` (parse_info); a
plan chooses the newest backup set that ended before the target and refuses a target
outside what is covered; a restore's arguments come from that plan. The database and
pgBackRest are replaced here by what they would answer (monkeypatched on the pitr module).
"""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

import depotix_backup.clock
from depotix_backup import pitr
from depotix_backup.errors import BackupError
from depotix_backup.pitr import (choose_set, cmd_pitr_plan, cmd_restore_point, coverage, parse_info,
                                 parse_target_time, read_points, restore_argv, restore_plan, write_points)
from depotix_backup.status import (PREFIX, archiver_values, outcome_values, pitr_values, read_status,
                                   record_outcome, write_status)

UTC = dt.timezone.utc

# A real `pgbackrest info --output=json` of one stanza with one full backup.
SAMPLE = (
    '[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000003",'
    '"min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000002",'
    '"stop":"000000010000000000000003"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},'
    '"error":false,"info":{"delta":23213731,"repository":{"delta":4550848,"size":4550848},"size":23213731},'
    '"label":"20261201-035415F","lsn":{"start":"0/2000028","stop":"0/3000050"},"prior":null,"reference":null,'
    '"timestamp":{"start":1796097255,"stop":1796097257},"type":"full"}],"cipher":"none","db":[{"id":1,'
    '"repo-key":1,"system-id":7714178936043442197,"version":"15"}],"name":"depotix","repo":[{"cipher":"none",'
    '"key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},'
    '"message":"ok"}}]'
)

FULL = "20261201-035415F"
DIFF = "20261201-035415F_20261202-011500D"
INCR = "20261201-035415F_20261203-011500I"
BROKEN = "20261201-035415F_20261203-120000I"  # pgBackRest marked it errored: never a set to restore
FULL2 = "20261204-035400F"


def wal(n: int) -> str:
    return f"00000001000000000000{n:04X}"


def sample_backup(label: str, kind: str, start: int, stop: int, prior: str | None, wal_start: str, wal_stop: str,
                  size: int, repo_size: int, error: bool = False) -> dict:
    """Return one entry of info's "backup" list, shaped as the real sample's."""
    entry = copy.deepcopy(json.loads(SAMPLE)[0]["backup"][0])
    entry.update(label=label, type=kind, prior=prior, error=error, reference=[prior] if prior else None)
    entry["timestamp"] = {"start": start, "stop": stop}
    entry["archive"] = {"start": wal_start, "stop": wal_stop}
    entry["info"] = {"delta": size, "repository": {"delta": repo_size, "size": repo_size}, "size": size}
    return entry


def several_backups_info() -> str:
    """Return info for a full, a diff, an incr, an errored incr and a second full, listed out of order."""
    stanza = json.loads(SAMPLE)
    first_full = stanza[0]["backup"][0]
    stanza[0]["backup"] = [
        sample_backup(INCR, "incr", 1796260500, 1796260519, DIFF, wal(9), wal(9), 23300000, 120000),
        sample_backup(FULL2, "full", 1796356440, 1796356475, None, wal(12), wal(13), 23400000, 4600000),
        sample_backup(BROKEN, "incr", 1796299200, 1796299230, INCR, wal(10), wal(11), 23350000, 90000, error=True),
        first_full,
        sample_backup(DIFF, "diff", 1796174100, 1796174142, FULL, wal(5), wal(6), 23250000, 310000),
    ]
    stanza[0]["archive"][0]["max"] = wal(13)
    return json.dumps(stanza)


def expected_backup(label: str, kind: str, prior: str | None, start: str, stop: str, stop_epoch: int,
                    wal_start: str, wal_stop: str, size: int, repo_size: int) -> dict:
    return {"label": label, "type": kind, "prior": prior, "start": start, "stop": stop, "stop_epoch": stop_epoch,
            "wal_start": wal_start, "wal_stop": wal_stop, "size": size, "repository_size": repo_size}


FIRST_FULL = expected_backup(FULL, "full", None, "2026-12-01T03:54:15+00:00", "2026-12-01T03:54:17+00:00",
                             1796097257, wal(2), wal(3), 23213731, 4550848)
DIFF_SET = expected_backup(DIFF, "diff", FULL, "2026-12-02T01:15:00+00:00", "2026-12-02T01:15:42+00:00",
                           1796174142, wal(5), wal(6), 23250000, 310000)
INCR_SET = expected_backup(INCR, "incr", DIFF, "2026-12-03T01:15:00+00:00", "2026-12-03T01:15:19+00:00",
                           1796260519, wal(9), wal(9), 23300000, 120000)
SECOND_FULL = expected_backup(FULL2, "full", None, "2026-12-04T03:54:00+00:00", "2026-12-04T03:54:35+00:00",
                              1796356475, wal(12), wal(13), 23400000, 4600000)

NOW = dt.datetime(2026, 12, 5, 9, 0, 0, tzinfo=UTC)
HEALTHY = {"last_archived_wal": wal(14), "last_archived_time": "2026-12-05T08:58:30+00:00",
           "archived_age_seconds": 90.0, "last_failed_wal": None, "last_failed_time": None, "failed_count": 0,
           "failing": False}
FAILING = {"last_archived_wal": wal(13), "last_archived_time": "2026-12-04T06:00:00+00:00",
           "archived_age_seconds": 97200.0, "last_failed_wal": wal(14), "last_failed_time": "2026-12-05T08:59:00+00:00",
           "failed_count": 212, "failing": True}
POINTS = [
    {"name": "before-2.1", "time": "2026-12-03T09:30:00.250000+00:00", "lsn": "0/9000090", "action": "deploy",
     "release": "2.0"},
    {"name": "before-rollback", "time": "2026-12-04T10:00:00.000001+00:00", "lsn": "0/D0000C8", "action": "rollback2",
     "release": "2.1"},
]


def moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# --- parse_info -------------------------------------------------------------------------------------------------

def test_parse_info_reads_the_real_sample():
    assert parse_info(SAMPLE) == {
        "stanza": "depotix", "status": "ok", "status_code": 0, "backups": [FIRST_FULL],
        "wal": {"min": wal(1), "max": wal(3)},
    }


def test_parse_info_orders_backups_by_their_end_and_ignores_an_errored_one():
    info = parse_info(several_backups_info())
    assert [b["label"] for b in info["backups"]] == [FULL, DIFF, INCR, FULL2]
    assert info["backups"] == [FIRST_FULL, DIFF_SET, INCR_SET, SECOND_FULL]
    assert info["wal"] == {"min": wal(1), "max": wal(13)}


def test_parse_info_takes_the_wal_range_over_every_archive_of_the_stanza():
    stanza = json.loads(SAMPLE)
    stanza[0]["archive"] = [
        {"database": {"id": 2, "repo-key": 1}, "id": "16-2", "max": "000000020000000000000009",
         "min": "000000020000000000000004"},
        {"database": {"id": 1, "repo-key": 1}, "id": "15-1", "max": wal(3), "min": wal(1)},
        {"database": {"id": 3, "repo-key": 1}, "id": "16-3", "max": None, "min": None},
    ]
    assert parse_info(json.dumps(stanza))["wal"] == {"min": wal(1), "max": "000000020000000000000009"}


def test_parse_info_of_a_stanza_without_backups():
    stanza = json.loads(SAMPLE)
    stanza[0]["backup"] = []
    stanza[0]["archive"] = []
    stanza[0]["status"] = {"code": 2, "lock": {"backup": {"held": False}}, "message": "no valid backups"}
    assert parse_info(json.dumps(stanza)) == {"stanza": "depotix", "status": "no valid backups", "status_code": 2,
                                              "backups": [], "wal": {"min": None, "max": None}}


def test_parse_info_where_every_backup_errored_has_no_backup():
    stanza = json.loads(SAMPLE)
    stanza[0]["backup"][0]["error"] = True
    assert parse_info(json.dumps(stanza))["backups"] == []


def test_parse_info_of_an_empty_list_says_there_is_no_stanza():
    with pytest.raises(BackupError) as caught:
        parse_info("[]")
    assert str(caught.value) == "pgbackrest info knows no stanza: create it (site.yml, postgres role)"


@pytest.mark.parametrize("text", ["", "ERROR: [055]: unable to load info file '/var/lib/pgbackrest/backup.info'",
                                  SAMPLE[:200]])
def test_parse_info_of_text_that_is_not_json_is_refused(text):
    with pytest.raises(BackupError, match=r"^pgbackrest info printed no JSON \(") as caught:
        parse_info(text)
    assert isinstance(caught.value.__cause__, ValueError)


# --- parse_target_time ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-30 10:14:59+00", dt.datetime(2026, 11, 30, 10, 14, 59, tzinfo=UTC)),
    ("2026-11-30 10:14:59+00:00", dt.datetime(2026, 11, 30, 10, 14, 59, tzinfo=UTC)),
    ("2026-11-30T10:14:59Z", dt.datetime(2026, 11, 30, 10, 14, 59, tzinfo=UTC)),
    ("2026-11-30 10:14:59.250+00", dt.datetime(2026, 11, 30, 10, 14, 59, 250000, tzinfo=UTC)),
    ("2026-11-30 10:14:59.123456Z", dt.datetime(2026, 11, 30, 10, 14, 59, 123456, tzinfo=UTC)),
    ("2026-11-30 12:14:59+02", dt.datetime(2026, 11, 30, 10, 14, 59, tzinfo=UTC)),
    ("2026-11-30 05:14:59-05:00", dt.datetime(2026, 11, 30, 10, 14, 59, tzinfo=UTC)),
    ("2026-12-01 01:44:59+05:30", dt.datetime(2026, 11, 30, 20, 14, 59, tzinfo=UTC)),
    ("  2026-11-30 10:14:59+00\n", dt.datetime(2026, 11, 30, 10, 14, 59, tzinfo=UTC)),
])
def test_parse_target_time_accepts_a_time_with_its_offset_and_returns_it_in_utc(text, expected):
    parsed = parse_target_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == dt.timedelta(0)
    assert parsed.isoformat() == expected.isoformat()


@pytest.mark.parametrize("text", ["2026-11-30 10:14:59", "2026-11-30T10:14:59.5", "2026-11-30 10:14"])
def test_parse_target_time_refuses_a_time_without_an_offset(text):
    with pytest.raises(BackupError) as caught:
        parse_target_time(text)
    assert str(caught.value) == (f"target_time {text!r} has no UTC offset: write it as '2026-11-30 10:14:59+00'")


@pytest.mark.parametrize("text", ["", "yesterday", "2026-11-31 10:14:59+00", "2026-11-30 25:00:00+00",
                                  "10:14:59+00", "2026-11-30 10:14:59 UTC"])
def test_parse_target_time_refuses_what_is_not_a_time(text):
    with pytest.raises(BackupError) as caught:
        parse_target_time(text)
    assert str(caught.value) == f"target_time {text!r} is not a time such as '2026-11-30 10:14:59+00'"


# --- coverage and choose_set ------------------------------------------------------------------------------------

def test_coverage_without_a_backup_is_refused():
    info = {"backups": [], "wal": {"min": None, "max": None}}
    with pytest.raises(BackupError, match="^the repository holds no backup yet: take one "):
        coverage(info, HEALTHY, NOW)


def test_coverage_without_a_backup_names_the_playbook_option_that_takes_one():
    with pytest.raises(BackupError) as caught:
        coverage({"backups": [], "wal": {"min": None, "max": None}}, None, NOW)
    assert "backup.yml -e pitr=full" in str(caught.value)


def test_coverage_runs_from_the_end_of_the_oldest_backup_to_now():
    info = parse_info(several_backups_info())
    assert coverage(info, HEALTHY, NOW) == {"from": "2026-12-01T03:54:17+00:00", "to": "2026-12-05T09:00:00+00:00"}
    assert coverage(info, None, NOW) == {"from": "2026-12-01T03:54:17+00:00", "to": "2026-12-05T09:00:00+00:00"}


def test_coverage_ends_at_the_last_archived_wal_when_archiving_fails():
    info = parse_info(several_backups_info())
    assert coverage(info, FAILING, NOW) == {"from": "2026-12-01T03:54:17+00:00", "to": "2026-12-04T06:00:00+00:00"}


def test_coverage_of_a_failing_archiver_that_never_archived_ends_now():
    info = parse_info(SAMPLE)
    never = {**FAILING, "last_archived_wal": None, "last_archived_time": None, "archived_age_seconds": None}
    assert coverage(info, never, NOW) == {"from": "2026-12-01T03:54:17+00:00", "to": "2026-12-05T09:00:00+00:00"}


@pytest.mark.parametrize(("at", "label"), [
    ("2026-12-01T03:54:18+00:00", FULL),
    ("2026-12-02T01:15:42.000001+00:00", DIFF),
    ("2026-12-02T01:15:42+00:00", FULL),  # the diff ends at that very second: not before it
    ("2026-12-03T01:15:20+00:00", INCR),
    ("2026-12-03T13:00:00+00:00", INCR),  # after the errored incr: it is never chosen
    ("2026-12-04T03:54:36+00:00", FULL2),
    ("2027-01-01T00:00:00+00:00", FULL2),
])
def test_choose_set_takes_the_newest_backup_that_ended_before_the_moment(at, label):
    info = parse_info(several_backups_info())
    assert choose_set(info, moment(at))["label"] == label


def test_choose_set_without_a_moment_takes_the_newest_backup():
    assert choose_set(parse_info(several_backups_info()), None) == SECOND_FULL


@pytest.mark.parametrize("at", ["2026-12-01T03:54:17+00:00", "2026-11-30T10:14:59+00:00"])
def test_choose_set_refuses_a_moment_before_every_backup_ended(at):
    with pytest.raises(BackupError) as caught:
        choose_set(parse_info(several_backups_info()), moment(at))
    assert str(caught.value) == "no backup ended before that moment"


def test_choose_set_of_an_empty_repository_is_refused():
    with pytest.raises(BackupError, match="^no backup ended before that moment$"):
        choose_set({"backups": []}, None)


# --- restore_plan and restore_argv ------------------------------------------------------------------------------

@pytest.mark.parametrize("label", [FULL, DIFF, INCR, FULL2])
def test_restore_plan_takes_a_full_diff_or_incr_label(label):
    assert restore_plan(label, None, None) == {"set": label, "target": {"type": "latest", "value": None},
                                               "timeline": None}


@pytest.mark.parametrize("label", ["latest", "", "20261201-035415", "20261201-035415D", "20261201-035415F_",
                                   "20261201-035415F_20261202-011500F", "2026121-035415F", "x20261201-035415F",
                                   "20261201-035415F_20261202-011500D_20261203-011500I", "20261201-035415F;ls"])
def test_restore_plan_refuses_what_is_not_a_backup_label(label):
    with pytest.raises(BackupError) as caught:
        restore_plan(label, None, None)
    assert str(caught.value) == f"backup set {label!r} is not a pgBackRest backup label"


@pytest.mark.parametrize(("label", "name"), [(FULL + "\n", None), (FULL, "before-2.1\n")])
def test_restore_plan_refuses_a_label_or_name_with_a_trailing_newline(label, name):
    with pytest.raises(BackupError):
        restore_plan(label, None, name)


def test_restore_plan_normalises_the_target_time_to_utc():
    assert restore_plan(DIFF, "2026-12-02 14:30:00.5+01", None) == {
        "set": DIFF, "target": {"type": "time", "value": "2026-12-02 13:30:00.500000+00:00"}, "timeline": None}
    assert restore_plan(DIFF, "2026-12-02T13:30:00Z", "ignored-when-a-time-is-given") == {
        "set": DIFF, "target": {"type": "time", "value": "2026-12-02 13:30:00+00:00"}, "timeline": None}


def test_restore_plan_refuses_a_target_time_without_offset():
    with pytest.raises(BackupError, match="has no UTC offset"):
        restore_plan(DIFF, "2026-12-02 13:30:00", None)


@pytest.mark.parametrize("name", ["before-2.1", "a", "deploy_2.1:rc-1", "X" * 63])
def test_restore_plan_takes_a_restore_point_name(name):
    assert restore_plan(FULL2, None, name) == {"set": FULL2, "target": {"type": "name", "value": name},
                                               "timeline": None}


@pytest.mark.parametrize("name", ["-before", ".hidden", "before 2.1", "before'2.1", "X" * 64, "before/2.1",
                                  "before;drop", "été"])
def test_restore_plan_refuses_a_name_this_script_never_records(name):
    with pytest.raises(BackupError) as caught:
        restore_plan(FULL2, None, name)
    assert str(caught.value) == f"restore point name {name!r} is not one this script records"


CONFIG = {"pitr_stanza": "depotix"}


def test_restore_argv_of_the_latest_has_no_target():
    plan = restore_plan(FULL2, None, None)
    assert restore_argv(CONFIG, plan) == ["--stanza=depotix", f"--set={FULL2}", "--process-max=2", "restore"]


def test_restore_argv_of_a_time_promotes_at_that_time():
    plan = restore_plan(DIFF, "2026-12-02 14:30:00+01", None)
    assert restore_argv({**CONFIG, "pitr_processes": "4"}, plan) == [
        "--stanza=depotix", f"--set={DIFF}", "--process-max=4", "--type=time",
        "--target=2026-12-02 13:30:00+00:00", "--target-action=promote", "restore"]


def test_restore_argv_of_a_restore_point_promotes_at_it():
    plan = restore_plan(INCR, None, "before-2.1")
    assert restore_argv(CONFIG, plan) == ["--stanza=depotix", f"--set={INCR}", "--process-max=2", "--type=name",
                                          "--target=before-2.1", "--target-action=promote", "restore"]


@pytest.mark.parametrize("config", [{}, {"pitr_stanza": ""}, {"pitr_stanza": None}])
def test_restore_argv_is_refused_when_point_in_time_recovery_is_off(config):
    with pytest.raises(BackupError, match="^point-in-time recovery is off on this host"):
        restore_argv(config, restore_plan(FULL, None, None))


# --- restore points ---------------------------------------------------------------------------------------------

@pytest.fixture
def points_config(tmp_path):
    return {**CONFIG, "restore_points": str(tmp_path / "restore-points.json"), "container": "server-postgres-1"}


@pytest.fixture
def no_database(monkeypatch):
    """Fail the test if anything reaches the database; return the statements that tried."""
    tried: list[str] = []

    def psql(config, statement, *args, **kwargs):
        tried.append(statement)
        raise AssertionError(f"the database was asked: {statement}")

    monkeypatch.setattr(pitr, "psql", psql)
    return tried


@pytest.mark.parametrize("name", ["", "-x", "_x", "before 2.1", "before'); DROP TABLE x; --", "X" * 64,
                                  "before/2.1", "before\t2.1", "été"])
def test_a_restore_point_with_a_bad_name_is_refused_before_anything_runs(points_config, no_database, tmp_path, name):
    with pytest.raises(BackupError) as caught:
        cmd_restore_point(points_config, name, "deploy", "2.1")
    assert str(caught.value) == (f"restore point name {name!r}: use 1 to 63 letters, digits and . _ - : "
                                 "(starting with a letter or digit)")
    assert no_database == []
    assert list(tmp_path.iterdir()) == []


def test_a_restore_point_name_with_a_trailing_newline_is_refused(points_config, no_database):
    with pytest.raises(BackupError, match="^restore point name "):
        cmd_restore_point(points_config, "before-2.1\n", "deploy", "2.1")


def test_a_restore_point_whose_name_is_recorded_already_is_refused_before_anything_runs(points_config, no_database):
    write_points(points_config, POINTS)
    with pytest.raises(BackupError) as caught:
        cmd_restore_point(points_config, "before-2.1", "deploy", "2.2")
    assert str(caught.value) == ("a restore point named before-2.1 is recorded already: a recovery to it would be "
                                 "ambiguous")
    assert no_database == []
    assert read_points(points_config) == POINTS


def test_a_restore_point_is_created_and_recorded_after_the_others(points_config, monkeypatch):
    write_points(points_config, POINTS)
    asked = []

    def psql(config, statement, *args, **kwargs):
        asked.append(statement)
        return "0/E000028|2026-12-05T08:59:59.123456+00:00\n"

    monkeypatch.setattr(pitr, "psql", psql)
    result = cmd_restore_point(points_config, "before-2.2", "deploy", "2.1")
    point = {"name": "before-2.2", "time": "2026-12-05T08:59:59.123456+00:00", "lsn": "0/E000028",
             "action": "deploy", "release": "2.1"}
    assert result == {"changed": True, "point": point}
    assert read_points(points_config) == [*POINTS, point]
    assert len(asked) == 1 and "pg_create_restore_point('before-2.2')" in asked[0]


def test_restore_points_round_trip(points_config, tmp_path):
    assert read_points(points_config) == []
    write_points(points_config, POINTS)
    assert read_points(points_config) == POINTS
    write_points(points_config, POINTS[:1])
    assert read_points(points_config) == POINTS[:1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["restore-points.json"]  # no temporary left


def test_a_torn_restore_points_file_is_refused(points_config):
    whole = json.dumps(POINTS, indent=1, sort_keys=True)
    path = points_config["restore_points"]
    with open(path, "w") as fh:
        fh.write(whole[: len(whole) // 2])
    with pytest.raises(BackupError) as caught:
        read_points(points_config)
    assert str(caught.value).startswith(f"{path} is not valid JSON (")
    assert str(caught.value).endswith("): move it aside; restore points are also in the PostgreSQL log")


# --- archiver_state ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("row", "expected"), [
    ("000000010000000000000007|1796200000.5|000000010000000000000008|1796200100.25|3|1796200160.5",
     {"last_archived_wal": wal(7), "last_archived_time": "2026-12-02T08:26:40.500000+00:00",
      "archived_age_seconds": 160.0, "last_failed_wal": wal(8), "last_failed_time": "2026-12-02T08:28:20.250000+00:00",
      "failed_count": 3, "failing": True}),
    ("000000010000000000000008|1796200150|000000010000000000000008|1796200100.25|3|1796200160.5\n",
     {"last_archived_wal": wal(8), "last_archived_time": "2026-12-02T08:29:10+00:00",
      "archived_age_seconds": 10.5, "last_failed_wal": wal(8), "last_failed_time": "2026-12-02T08:28:20.250000+00:00",
      "failed_count": 3, "failing": False}),
    ("|0||0|0|1796200160.5",
     {"last_archived_wal": None, "last_archived_time": None, "archived_age_seconds": None, "last_failed_wal": None,
      "last_failed_time": None, "failed_count": 0, "failing": False}),
])
def test_archiver_state_reads_pg_stat_archiver(monkeypatch, row, expected):
    monkeypatch.setattr(pitr, "psql", lambda config, statement, **kwargs: row)
    assert pitr.archiver_state({}) == expected


# --- cmd_pitr_plan ----------------------------------------------------------------------------------------------

@pytest.fixture
def repository(monkeypatch, points_config):
    """The repository of several_backups_info(), a healthy archiver, the clock at NOW; return the settings."""
    state = {"archiver": HEALTHY}

    def archiver_state(config):
        if state["archiver"] is None:
            raise BackupError("psql failed: connection to server on socket failed")
        return state["archiver"]

    info = parse_info(several_backups_info())
    info["wal"]["max"] = wal(13)
    monkeypatch.setattr(pitr, "repository_info", lambda config: info)
    monkeypatch.setattr(pitr, "archiver_state", archiver_state)
    # The live database's timeline, asked only while it answers (the archiver's state read).
    monkeypatch.setattr(pitr, "live_timeline", lambda config: 3)
    monkeypatch.setattr(depotix_backup.clock, "utc_now", lambda: NOW)
    points_config["_archiver"] = state
    return points_config


def set_archiver(config, archiver):
    config["_archiver"]["archiver"] = archiver


def test_plan_refuses_a_time_before_the_end_of_the_oldest_backup_and_gives_the_covered_range(repository):
    with pytest.raises(BackupError) as caught:
        cmd_pitr_plan(repository, "2026-11-30 10:14:59+00", None)
    assert str(caught.value) == (
        "time target 2026-11-30 10:14:59+00:00 (2026-11-30T10:14:59+00:00) is outside what the repository covers: "
        "from 2026-12-01T03:54:17+00:00 (the end of the oldest backup) to 2026-12-05T09:00:00+00:00")


def test_plan_refuses_a_time_in_the_future(repository):
    with pytest.raises(BackupError, match=r"^time target 2026-12-05 09:00:01\+00:00 .* is outside what the "
                                          r"repository covers: from 2026-12-01T03:54:17\+00:00 .* to "
                                          r"2026-12-05T09:00:00\+00:00$"):
        cmd_pitr_plan(repository, "2026-12-05 10:00:01+01", None)


def test_plan_refuses_a_time_after_the_last_archived_wal_when_archiving_fails(repository):
    set_archiver(repository, FAILING)
    with pytest.raises(BackupError) as caught:
        cmd_pitr_plan(repository, "2026-12-04 07:00:00+00", None)
    assert str(caught.value).endswith("from 2026-12-01T03:54:17+00:00 (the end of the oldest backup) to "
                                      "2026-12-04T06:00:00+00:00")
    plan = cmd_pitr_plan(repository, "2026-12-04 05:00:00+00", None)
    assert (plan["set"], plan["wal"]) == (FULL2, {"from": wal(12), "to": wal(13)})


def test_plan_for_a_time_in_range_chooses_the_set_that_ended_before_it(repository):
    plan = cmd_pitr_plan(repository, "2026-12-02 14:30:00+01", None)
    assert plan == {
        "changed": False,
        "target": {"type": "time", "value": "2026-12-02 13:30:00+00:00", "time": "2026-12-02T13:30:00+00:00"},
        "covered": {"from": "2026-12-01T03:54:17+00:00", "to": "2026-12-05T09:00:00+00:00"},
        "set": DIFF, "backup": DIFF_SET, "timeline": 3, "wal": {"from": wal(5), "to": wal(14)}, "archiver": HEALTHY,
    }


@pytest.mark.parametrize(("target_time", "label"), [
    ("2026-12-01 03:54:18+00", FULL),
    ("2026-12-03 13:00:00Z", INCR),  # after the errored incr ended: the incr before it
    ("2026-12-04 04:54:36+01", FULL2),
    ("2026-12-05 08:59:59.999999+00", FULL2),
])
def test_plan_for_a_time_in_range_chooses_the_newest_usable_set(repository, target_time, label):
    assert cmd_pitr_plan(repository, target_time, None)["set"] == label


def test_plan_refuses_the_very_second_the_oldest_backup_ended(repository):
    # In the covered range (from is inclusive), but no backup ended *before* it.
    with pytest.raises(BackupError):
        cmd_pitr_plan(repository, "2026-12-01 03:54:17+00", None)


def test_plan_without_a_target_recovers_the_newest_set_to_the_last_archived_wal(repository):
    plan = cmd_pitr_plan(repository, None, None)
    assert plan["target"] == {"type": "latest", "value": None, "time": "2026-12-05T09:00:00+00:00"}
    assert (plan["set"], plan["backup"], plan["wal"]) == (FULL2, SECOND_FULL, {"from": wal(12), "to": wal(14)})


def test_plan_when_the_database_does_not_answer_takes_the_wal_range_from_the_repository(repository):
    set_archiver(repository, None)
    plan = cmd_pitr_plan(repository, "2026-12-03 02:00:00+00", None)
    assert (plan["set"], plan["archiver"], plan["wal"]) == (INCR, None, {"from": wal(9), "to": wal(13)})
    assert plan["covered"] == {"from": "2026-12-01T03:54:17+00:00", "to": "2026-12-05T09:00:00+00:00"}


def test_plan_refuses_a_restore_point_that_is_not_recorded(repository):
    with pytest.raises(BackupError) as caught:
        cmd_pitr_plan(repository, None, "before-2.1")
    assert str(caught.value) == "no restore point named before-2.1 is recorded (the newest: none)"
    more = [{**POINTS[0], "name": f"p{n}"} for n in range(1, 7)]
    write_points(repository, more)
    with pytest.raises(BackupError) as caught:
        cmd_pitr_plan(repository, None, "before-2.1")
    assert str(caught.value) == "no restore point named before-2.1 is recorded (the newest: p2, p3, p4, p5, p6)"


@pytest.mark.parametrize(("name", "label", "backup"), [("before-2.1", INCR, INCR_SET),
                                                      ("before-rollback", FULL2, SECOND_FULL)])
def test_plan_for_a_recorded_restore_point_chooses_the_set_that_ended_before_it(repository, name, label, backup):
    write_points(repository, POINTS)
    point = next(p for p in POINTS if p["name"] == name)
    plan = cmd_pitr_plan(repository, None, name)
    assert plan["target"] == {"type": "name", "value": name, "time": point["time"], "point": point}
    assert (plan["set"], plan["backup"]) == (label, backup)
    assert plan["wal"] == {"from": backup["wal_start"], "to": wal(14)}


def test_plan_refuses_a_restore_point_recorded_before_the_oldest_backup_ended(repository):
    write_points(repository, [{**POINTS[0], "name": "too-old", "time": "2026-12-01T03:00:00.5+00:00"}, *POINTS])
    with pytest.raises(BackupError) as caught:
        cmd_pitr_plan(repository, None, "too-old")
    assert str(caught.value) == (
        "name target too-old (2026-12-01T03:00:00.500000+00:00) is outside what the repository covers: "
        "from 2026-12-01T03:54:17+00:00 (the end of the oldest backup) to 2026-12-05T09:00:00+00:00")


# --- status: the pgBackRest metrics -----------------------------------------------------------------------------

CLOCK = 1796461200.4  # 2026-12-05T09:00:00.4Z


@pytest.fixture
def frozen_time(monkeypatch):
    import depotix_backup.status as status
    monkeypatch.setattr(status.time, "time", lambda: CLOCK)


def backup_result(kind: str, archiver: dict | None = HEALTHY) -> dict:
    return {"changed": True, "type": kind, "backup": SECOND_FULL, "seconds": 35.2, "backups": 4, "archiver": archiver}


@pytest.mark.parametrize("kind", ["full", "diff", "incr"])
def test_a_pgbackrest_backup_sets_its_types_success_time_and_the_archivers_metrics(frozen_time, kind):
    expected = {"pitr_last_run_success": 1, f"pitr_{kind}_last_success_timestamp_seconds": 1796461200,
                "pitr_wal_archive_failing": 0, "pitr_wal_archived_age_seconds": 90.0}
    assert pitr_values("pitr-backup", backup_result(kind)) == expected
    assert outcome_values("pitr-backup", backup_result(kind), 35.2) == expected


def test_a_pgbackrest_backup_while_archiving_fails_says_so(frozen_time):
    assert outcome_values("pitr-backup", backup_result("full", FAILING), 1.0) == {
        "pitr_last_run_success": 1, "pitr_full_last_success_timestamp_seconds": 1796461200,
        "pitr_wal_archive_failing": 1, "pitr_wal_archived_age_seconds": 97200.0}


@pytest.mark.parametrize(("command", "expected"), [
    ("pitr-backup", {"pitr_last_run_success": 0}),
    ("pitr-verify", {"pitr_verify_last_run_success": 0}),
    ("pitr-check", {"pitr_wal_archive_failing": 1}),
])
def test_a_failed_pgbackrest_run_sets_only_its_failure(command, expected):
    assert outcome_values(command, None, 3.0) == expected


def test_a_passed_verify_sets_its_success_time_and_the_archivers_metrics(frozen_time):
    result = {"changed": False, "verified": True, "seconds": 12.0, "archiver": HEALTHY}
    assert outcome_values("pitr-verify", result, 12.0) == {
        "pitr_verify_last_run_success": 1, "pitr_verify_last_success_timestamp_seconds": 1796461200,
        "pitr_wal_archive_failing": 0, "pitr_wal_archived_age_seconds": 90.0}


def test_a_passed_check_sets_only_the_archivers_metrics(frozen_time):
    result = {"changed": False, "checked": True, "archiver": {**HEALTHY, "archived_age_seconds": 0.7}}
    assert outcome_values("pitr-check", result, 2.0) == {"pitr_wal_archive_failing": 0,
                                                         "pitr_wal_archived_age_seconds": 0.7}


def test_archiver_values():
    assert archiver_values(None) == {}
    assert archiver_values({}) == {}
    assert archiver_values(HEALTHY) == {"pitr_wal_archive_failing": 0, "pitr_wal_archived_age_seconds": 90.0}
    never = {**HEALTHY, "last_archived_wal": None, "last_archived_time": None, "archived_age_seconds": None}
    assert archiver_values(never) == {"pitr_wal_archive_failing": 0}
    assert archiver_values({**never, "failing": True}) == {"pitr_wal_archive_failing": 1}


def test_pgbackrest_outcomes_keep_the_dump_metrics_in_the_status_file(tmp_path, frozen_time):
    path = tmp_path / "depotix_backup.prom"
    write_status(path, {"last_run_success": 1, "last_success_timestamp_seconds": 1796400000,
                        "last_size_bytes": 52000, "last_duration_seconds": 4.25})
    config = {"status_file": str(path)}
    record_outcome(config, "pitr-backup", backup_result("full"), 35.2)
    record_outcome(config, "pitr-verify", None, 12.0)
    record_outcome(config, "pitr-check", None, 2.0)
    assert read_status(path) == {
        "last_run_success": 1, "last_success_timestamp_seconds": 1796400000, "last_size_bytes": 52000,
        "last_duration_seconds": 4.25, "pitr_full_last_success_timestamp_seconds": 1796461200,
        "pitr_last_run_success": 1, "pitr_verify_last_run_success": 0, "pitr_wal_archive_failing": 1,
        "pitr_wal_archived_age_seconds": 90.0}
    text = path.read_text()
    assert f"{PREFIX}pitr_wal_archived_age_seconds 90\n" in text
    assert f"# TYPE {PREFIX}pitr_wal_archive_failing gauge\n{PREFIX}pitr_wal_archive_failing 1\n" in text


def test_a_plan_follows_the_live_timeline_and_the_restore_passes_it_on():
    plan = restore_plan(FULL2, None, None, 2)
    assert plan["timeline"] == 2
    assert restore_argv(CONFIG, plan) == ["--stanza=depotix", f"--set={FULL2}", "--process-max=2",
                                          "--target-timeline=2", "restore"]


@pytest.mark.parametrize("timeline", [0, -1])
def test_a_timeline_below_one_is_refused(timeline):
    with pytest.raises(BackupError, match=f"^timeline {timeline} is not a PostgreSQL timeline$"):
        restore_plan(FULL2, None, None, timeline)
