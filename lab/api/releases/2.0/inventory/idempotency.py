"""Idempotent movement creation (new in release 2.0, behind IDEMPOTENCY_ENABLED).

A client that retries a POST after a timeout cannot know whether the first attempt was
recorded. With an `Idempotency-Key` header (or an `idempotency_key` field) the retry is
safe: the same key with the same request returns the movement recorded the first time
(200) and records nothing; the same key with a different request is a client bug and is
refused (409). The key is stored on the movement, unique, so the database itself settles
two concurrent first attempts: the loser's insert fails and it answers with the winner's
movement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError

from depotix_api.errors import ApiError
from inventory.models import StockMovement
from inventory.movements import record_movement
from inventory.validation import MovementRequest

HEADER = "Idempotency-Key"
FIELD = "idempotency_key"
MAX_KEY_LENGTH = 255


class IdempotencyConflictError(ApiError):
    """The key was already used for a different request."""

    status = 409


def valid_key(value: object, source: str) -> str:
    """Return the key if it is a usable one, or refuse it saying what a key must be."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY_LENGTH or not value.isprintable():
        raise ApiError(
            f"invalid {source}: a non-empty printable string of at most {MAX_KEY_LENGTH} characters",
            fields={FIELD: "invalid"},
        )
    return value


def idempotency_key(headers: Mapping[str, str], payload: Mapping[str, Any]) -> str | None:
    """Return the request's key from the header or the body field, or None if it has none."""
    header_key = valid_key(headers[HEADER], f"{HEADER} header") if HEADER in headers else None
    field_key = valid_key(payload[FIELD], f"{FIELD} field") if FIELD in payload else None
    if header_key and field_key and header_key != field_key:
        raise ApiError(
            f"the {HEADER} header and the {FIELD} field differ: send one key, or the same in both",
            fields={FIELD: "differs from the header"},
        )
    return header_key or field_key


def differences(movement: StockMovement, request: MovementRequest, user: AbstractBaseUser | None) -> list[str]:
    """Return the names of the fields in which a repeat differs from the recorded movement."""
    recorded = {
        "item": movement.item_id,
        "type": movement.type,
        "qty_base": movement.qty_base,
        "note": movement.note,
        "user": movement.created_by_id,
    }
    repeated = {
        "item": request.item_id,
        "type": request.type,
        "qty_base": request.qty_base,
        "note": request.note,
        "user": user.pk if user else None,
    }
    return [name for name in recorded if recorded[name] != repeated[name]]


def replayed(key: str, request: MovementRequest, user: AbstractBaseUser | None) -> StockMovement | None:
    """Return the movement already recorded under key, refusing a repeat that differs."""
    movement = StockMovement.objects.select_related("created_by").filter(idempotency_key=key).first()
    if movement is None:
        return None
    changed = differences(movement, request, user)
    if changed:
        raise IdempotencyConflictError(
            f"{HEADER} {key!r} was already used for a different request (movement {movement.pk}; "
            f"differs in {', '.join(changed)}): use a new key for a new movement",
            fields=dict.fromkeys(changed, "differs from the first request"),
        )
    return movement


def record_movement_once(
    request: MovementRequest, user: AbstractBaseUser | None, key: str
) -> tuple[StockMovement, bool]:
    """Return (movement, created): the movement recorded under key, recording it if new."""
    existing = replayed(key, request, user)
    if existing is not None:
        return existing, False
    try:
        return record_movement(request, user, idempotency_key=key), True
    except IntegrityError:
        # A concurrent request with the same key committed first; its movement is the answer.
        existing = replayed(key, request, user)
        if existing is None:
            raise
        return existing, False
