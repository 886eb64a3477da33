"""`manage.py create_api_token USER [--name N] [--output PATH]`: a token for the lab.

With --output the command is idempotent: when PATH already holds the user's current
token it changes nothing and says `unchanged`; otherwise it issues a token, writes it to
PATH with mode 0600 and says `created`. Without --output it issues a token and prints
it (the database keeps only hashes, so an existing token can never be shown again).
The first word of the output is what an Ansible task keys `changed` on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apitokens.tokens import issue_token, token_is_valid_for


def ensure_user(username: str) -> AbstractBaseUser:
    """Return the user, creating it without a usable password (it only ever uses tokens)."""
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def read_token_file(path: Path) -> str | None:
    """Return the token stored at path, or None when there is none to read."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except (FileNotFoundError, IsADirectoryError):
        return None


def write_private_file(path: Path, content: str) -> None:
    """Write content with mode 0600 from the first byte, replacing the file atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(content + "\n")
    os.replace(temporary, path)


class Command(BaseCommand):
    help = "Create (or keep) an API token for a user; write it to a 0600 file or print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="user the token acts as; created when missing")
        parser.add_argument(
            "--name", default="default", help="token name; a new token replaces the old one of that name"
        )
        parser.add_argument(
            "--output", type=Path, help="file to write the token to (mode 0600); kept while still valid"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = ensure_user(options["username"])
        name: str = options["name"]
        output: Path | None = options["output"]
        if output is None:
            self.stdout.write(issue_token(user, name))
            return
        if not output.parent.is_dir():
            raise CommandError(f"--output {output}: directory {output.parent} does not exist")
        current = read_token_file(output)
        if current and token_is_valid_for(current, user, name):
            self.stdout.write(f"unchanged: {output} holds the current token '{name}' of {user}")
            return
        write_private_file(output, issue_token(user, name))
        self.stdout.write(f"created: token '{name}' of {user} written to {output}")
