"""Issue and check API tokens.

Tokens are 256 random bits, so a plain SHA-256 is enough to store them: there is no
password to brute-force, and a lookup by hash needs no per-row salt.
"""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from apitokens.models import ApiToken

AUTH_SCHEMES = ("bearer", "token")


def hash_token(token: str) -> str:
    """Return the hex SHA-256 stored for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(user: AbstractBaseUser, name: str) -> str:
    """Create a token for the user under `name`, replacing any earlier one of that name."""
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        ApiToken.objects.filter(user=user, name=name).delete()
        ApiToken.objects.create(user=user, name=name, key_hash=hash_token(token))
    return token


def token_is_valid_for(token: str, user: AbstractBaseUser, name: str) -> bool:
    """Return whether `token` is the current token of `user` under `name`."""
    return ApiToken.objects.filter(user=user, name=name, key_hash=hash_token(token)).exists()


def token_from_header(header: str) -> str | None:
    """Return the token of an `Authorization: Bearer <t>` (or `Token <t>`) header."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() not in AUTH_SCHEMES or not token.strip():
        return None
    return token.strip()


def user_for_token(token: str) -> AbstractBaseUser | None:
    """Return the active user a token belongs to, or None."""
    found = ApiToken.objects.select_related("user").filter(key_hash=hash_token(token)).first()
    if found is None or not found.user.is_active:
        return None
    return found.user
