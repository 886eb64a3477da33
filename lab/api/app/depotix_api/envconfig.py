"""Read the API's settings from the environment.

The same image runs in every environment; only the environment differs. Every function
takes the environment as a mapping so the rules can be tested without touching
`os.environ`, and every problem raises `ImproperlyConfigured` naming the variable to fix:
a process with a missing secret or database setting must stop at start, not limp on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1")
DEFAULT_CONNECT_TIMEOUT_S = "5"
# Seconds a worker keeps its database connection between requests. A new connection per
# request (0) costs PostgreSQL a backend process and an authentication each time, which
# at a health probe a second and a few dozen requests a second is most of its work.
DEFAULT_CONN_MAX_AGE_S = 60
DATABASE_URL_SHAPE = "postgres://USER@HOST[:PORT]/NAME, the password in DATABASE_PASSWORD_FILE"


def flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    """Return a boolean variable; an unrecognised word is an error, not False."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use one of {sorted(TRUE_WORDS | FALSE_WORDS)}")


def read_secret_file(path: str, variable: str) -> str:
    """Return a secret stored in a file, without the trailing newline editors add."""
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"{variable}={path}: cannot read it ({exc.strerror})") from exc
    if not value:
        raise ImproperlyConfigured(f"{variable}={path}: the file is empty")
    return value


def secret_key(env: Mapping[str, str]) -> str:
    """Return Django's secret key; the `_FILE` variant wins so the key can stay off `env`."""
    key_file = env.get("DJANGO_SECRET_KEY_FILE", "").strip()
    if key_file:
        return read_secret_file(key_file, "DJANGO_SECRET_KEY_FILE")
    key = env.get("DJANGO_SECRET_KEY", "").strip()
    if key:
        return key
    raise ImproperlyConfigured(
        "no secret key: set DJANGO_SECRET_KEY_FILE (a file holding the key) or DJANGO_SECRET_KEY"
    )


def allowed_hosts(env: Mapping[str, str]) -> list[str]:
    """Return the comma-separated DJANGO_ALLOWED_HOSTS, or loopback names when unset."""
    raw = env.get("DJANGO_ALLOWED_HOSTS", "")
    hosts = [host.strip() for host in raw.split(",") if host.strip()]
    return hosts or list(DEFAULT_ALLOWED_HOSTS)


def split_host_port(hostport: str) -> tuple[str, str]:
    """Split `host[:port]` or `[v6]:port`; parsed by hand because urllib lowercases hosts,
    which would break a percent-encoded socket directory such as `%2Frun%2FPostgres`."""
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest.removeprefix(":")
    elif ":" in hostport:
        host, _, port = hostport.rpartition(":")
    else:
        host, port = hostport, ""
    if port and not port.isdigit():
        raise ImproperlyConfigured(f"DATABASE_URL: port {port!r} is not a number")
    return unquote(host), port


def database_config(env: Mapping[str, str]) -> dict[str, object]:
    """Return Django's DATABASES["default"] from DATABASE_URL.

    DATABASE_PASSWORD_FILE, when set, replaces the URL's password, so the password need
    not sit in the URL, the container's environment or `docker inspect`. Query
    parameters (`sslmode`, `connect_timeout`, ...) go to libpq unchanged.
    """
    url = env.get("DATABASE_URL", "").strip()
    if not url:
        raise ImproperlyConfigured(f"DATABASE_URL is not set: expected {DATABASE_URL_SHAPE}")
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL: scheme {parts.scheme!r} is not supported: expected {DATABASE_URL_SHAPE}"
        )
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    host, port = split_host_port(hostport)
    name = unquote(parts.path.removeprefix("/"))
    if not host or not name:
        raise ImproperlyConfigured(f"DATABASE_URL: host and database name are required: expected {DATABASE_URL_SHAPE}")
    password_file = env.get("DATABASE_PASSWORD_FILE", "").strip()
    password = read_secret_file(password_file, "DATABASE_PASSWORD_FILE") if password_file else unquote(password)
    options: dict[str, str] = dict(parse_qsl(parts.query))
    # A health probe must answer within its own timeout even when the database is gone.
    options.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(user),
        "PASSWORD": password,
        "HOST": host,
        "PORT": port or "5432",
        "OPTIONS": options,
        "CONN_MAX_AGE": conn_max_age(env),
        # A kept connection that the server ended (a restart, a restore's swap) is found
        # unusable at the start of the next request and replaced, not failed on.
        "CONN_HEALTH_CHECKS": True,
    }


def conn_max_age(env: Mapping[str, str]) -> int:
    """Return DATABASE_CONN_MAX_AGE (seconds a connection is kept; 0 = one per request)."""
    raw = env.get("DATABASE_CONN_MAX_AGE", "").strip()
    if not raw:
        return DEFAULT_CONN_MAX_AGE_S
    if not (raw.isascii() and raw.isdigit()):
        raise ImproperlyConfigured(f"DATABASE_CONN_MAX_AGE={raw!r} is not a whole number of seconds (0 or more)")
    return int(raw)
