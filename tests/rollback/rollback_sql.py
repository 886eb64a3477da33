"""The rollback plays' SQL as the plays send it: rendered from the template, run with the query entry point's psql.

The template is rendered with rollback.yml's own defaults (playbooks/rollback/defaults.yml)
and Jinja's trim_blocks, as Ansible's template lookup renders it; psql gets the options
read from the postgres role's query entry point (roles/postgres/tasks/query.yml).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jinja2
import yaml

from app_harness import Database

REPO = Path(__file__).resolve().parents[2]
ROLLBACK_DIR = REPO / "playbooks" / "rollback"
QUERY_TASKS = REPO / "roles" / "postgres" / "tasks" / "query.yml"


def rollback_defaults() -> dict[str, object]:
    """Return rollback.yml's knobs as its vars_files gives them to the plays."""
    return yaml.safe_load((ROLLBACK_DIR / "defaults.yml").read_text())


def render_sql(template: str, **variables: object) -> str:
    """Return the play's SQL: the template rendered with the rollback defaults, overridden by `variables`.

    trim_blocks as Ansible's template lookup sets it, so the text is the one the play sends.
    """
    environment = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined, autoescape=False)
    text = (ROLLBACK_DIR / template).read_text()
    return environment.from_string(text).render({**rollback_defaults(), **variables})


def query_flags() -> list[str]:
    """Return the psql options of the postgres role's query entry point (between `psql` and `-U`)."""
    tasks = yaml.safe_load(QUERY_TASKS.read_text())
    argv = next(task["ansible.builtin.command"]["argv"] for task in tasks if "ansible.builtin.command" in task)
    return argv[argv.index("psql") + 1 : argv.index("-U")]


@dataclass
class SqlRun:
    """A psql run of the play's SQL against a test database, as the query entry point runs it."""

    database: Database
    application_name: str

    def env(self) -> dict[str, str]:
        """Return psql's connection settings (the password in the environment, never on the command line)."""
        parts = urlsplit(self.database.server.conninfo(self.database.name))
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PGHOST": parts.hostname or "127.0.0.1",
            "PGPORT": str(parts.port or 5432),
            "PGUSER": unquote(parts.username or "postgres"),
            "PGPASSWORD": unquote(parts.password or ""),
            "PGDATABASE": self.database.name,
            "PGAPPNAME": self.application_name,
        }

    def argv(self, sql: str) -> list[str]:
        return ["psql", *query_flags(), "-c", sql]

    def start(self, sql: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(sql), env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def run(self, sql: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(sql), env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
