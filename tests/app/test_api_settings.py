"""Settings from the environment: what is accepted, what wins, and what stops the app at start."""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import pytest
from django.core.exceptions import ImproperlyConfigured

from app_harness import API_DIR, Database, DatabaseServer, ReleaseTree, app_environment, run_manage


def load_envconfig() -> ModuleType:
    """Import depotix_api/envconfig.py by path: it is the same file in every release."""
    path = API_DIR / "app" / "depotix_api" / "envconfig.py"
    spec = importlib.util.spec_from_file_location("depotix_envconfig_under_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


envconfig = load_envconfig()
# A password generated per run, with characters that must be percent-encoded in a URL.
GENERATED_CREDENTIAL = "s@c/" + secrets.token_hex(8)
URL = f"postgres://depotix:{quote(GENERATED_CREDENTIAL, safe='')}@db.example:6543/depotix"


def test_database_url_is_split_and_percent_decoded() -> None:
    config = envconfig.database_config({"DATABASE_URL": URL})

    assert {key: config[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")} == {
        "NAME": "depotix",
        "USER": "depotix",
        "PASSWORD": GENERATED_CREDENTIAL,
        "HOST": "db.example",
        "PORT": "6543",
    }
    assert config["ENGINE"] == "django.db.backends.postgresql"


def test_database_url_query_goes_to_libpq_with_a_default_connect_timeout() -> None:
    config = envconfig.database_config({"DATABASE_URL": "postgresql://u@db/n?sslmode=require"})

    assert config["OPTIONS"] == {"sslmode": "require", "connect_timeout": "5"}
    assert config["PORT"] == "5432"
    assert config["PASSWORD"] == ""


def test_database_password_file_overrides_the_url_password(tmp_path: Path) -> None:
    password_file = tmp_path / "db-password"
    password_file.write_text("from-file\n")

    config = envconfig.database_config({"DATABASE_URL": URL, "DATABASE_PASSWORD_FILE": str(password_file)})

    assert config["PASSWORD"] == "from-file"


def test_connections_are_kept_a_minute_and_checked_before_reuse() -> None:
    config = envconfig.database_config({"DATABASE_URL": URL})

    assert (config["CONN_MAX_AGE"], config["CONN_HEALTH_CHECKS"]) == (60, True)


@pytest.mark.parametrize(("raw", "seconds"), [("0", 0), (" 300 ", 300)])
def test_database_conn_max_age_sets_how_long_a_connection_is_kept(raw: str, seconds: int) -> None:
    config = envconfig.database_config({"DATABASE_URL": URL, "DATABASE_CONN_MAX_AGE": raw})

    assert config["CONN_MAX_AGE"] == seconds


@pytest.mark.parametrize("raw", ["-1", "1.5", "forever", "\u00b2"])
def test_database_conn_max_age_that_is_not_whole_seconds_stops_the_app(raw: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_CONN_MAX_AGE"):
        envconfig.database_config({"DATABASE_URL": URL, "DATABASE_CONN_MAX_AGE": raw})


@pytest.mark.parametrize(
    ("hostport", "host", "port"),
    [("%2Frun%2FPostgreSQL", "/run/PostgreSQL", "5432"), ("[::1]:5433", "::1", "5433"), ("Db-1", "Db-1", "5432")],
)
def test_database_host_keeps_its_case_and_accepts_sockets_and_ipv6(hostport: str, host: str, port: str) -> None:
    config = envconfig.database_config({"DATABASE_URL": f"postgres://u@{hostport}/n"})

    assert (config["HOST"], config["PORT"]) == (host, port)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DATABASE_URL is not set"),
        ({"DATABASE_URL": "mysql://u@h/n"}, "scheme 'mysql' is not supported"),
        ({"DATABASE_URL": "postgres://u@h:port/n"}, "port 'port' is not a number"),
        ({"DATABASE_URL": "postgres://u@h/"}, "database name are required"),
        ({"DATABASE_URL": URL, "DATABASE_PASSWORD_FILE": "/nonexistent/pw"}, "DATABASE_PASSWORD_FILE=/nonexistent/pw"),
    ],
)
def test_bad_database_settings_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        envconfig.database_config(env)


def test_secret_key_file_wins_over_the_variable(tmp_path: Path) -> None:
    key_file = tmp_path / "secret-key"
    key_file.write_text("key-from-file\n")

    assert (
        envconfig.secret_key({"DJANGO_SECRET_KEY": "key-from-env", "DJANGO_SECRET_KEY_FILE": str(key_file)})
        == "key-from-file"
    )
    assert envconfig.secret_key({"DJANGO_SECRET_KEY": "key-from-env"}) == "key-from-env"


@pytest.mark.parametrize("env", [{}, {"DJANGO_SECRET_KEY": "  "}])
def test_missing_secret_key_is_refused_naming_both_variables(env: dict[str, str]) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"DJANGO_SECRET_KEY_FILE .* or DJANGO_SECRET_KEY"):
        envconfig.secret_key(env)


def test_empty_secret_key_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")

    with pytest.raises(ImproperlyConfigured, match="the file is empty"):
        envconfig.secret_key({"DJANGO_SECRET_KEY_FILE": str(empty), "DJANGO_SECRET_KEY": "ignored"})


@pytest.mark.parametrize(
    ("raw", "expected"), [("", True), ("true", True), ("ON", True), ("0", False), ("no", False), (" False ", False)]
)
def test_flags_read_common_words_and_default_when_unset(raw: str, expected: bool) -> None:
    assert envconfig.flag({"IDEMPOTENCY_ENABLED": raw}, "IDEMPOTENCY_ENABLED", default=True) is expected


def test_flag_with_an_unknown_word_is_refused_not_read_as_false() -> None:
    with pytest.raises(ImproperlyConfigured, match="DJANGO_DEBUG='maybe' is not a boolean"):
        envconfig.flag({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG", default=False)


def test_allowed_hosts_are_comma_separated_with_loopback_default() -> None:
    assert envconfig.allowed_hosts({"DJANGO_ALLOWED_HOSTS": "api.depotix.example, api ,"}) == [
        "api.depotix.example",
        "api",
    ]
    assert envconfig.allowed_hosts({}) == ["localhost", "127.0.0.1"]


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DATABASE_URL"])
def test_app_refuses_to_start_without_a_required_setting(
    missing: str, release_tree: ReleaseTree, secret_key: str, db_server: DatabaseServer
) -> None:
    env = app_environment(Database(db_server, "x", "postgres://u@127.0.0.1:1/x"), "1.0", secret_key)
    del env[missing]

    result = run_manage(release_tree("1.0"), env, "check", check=False)

    assert result.returncode != 0
    assert missing in result.stderr
