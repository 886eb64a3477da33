"""Check a stock movement request before anything touches the database.

Every refusal names the field and what a valid value looks like, so a client can fix its
request from the message alone. Unknown fields are ignored, so a client written for a
later release still works against an earlier one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from depotix_api.errors import ApiError
from inventory.models import StockMovement

MAX_INT = 2**31 - 1  # PostgreSQL `integer`, the type of qty_base and quantity
MAX_NOTE_LENGTH = 1000
MOVEMENT_TYPES = tuple(StockMovement.Type.values)


@dataclass(frozen=True)
class MovementRequest:
    """A validated request to record one stock movement."""

    item_id: int
    type: str
    qty_base: int
    note: str


def json_object(body: bytes) -> dict[str, Any]:
    """Return the request body as a JSON object, or refuse it."""
    try:
        payload = json.loads(body or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(f"malformed JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ApiError("the request body must be a JSON object")
    return payload


def is_integer(value: object) -> bool:
    """Return whether a JSON value is an integer (JSON `true` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def field_errors(payload: dict[str, Any]) -> dict[str, str]:
    """Return a message per invalid field; empty when the payload is valid."""
    errors: dict[str, str] = {}
    item = payload.get("item")
    if not is_integer(item) or item < 1:
        errors["item"] = "must be the id of an inventory item (a positive integer)"
    if payload.get("type") not in MOVEMENT_TYPES:
        errors["type"] = f"must be one of {', '.join(MOVEMENT_TYPES)}"
    qty_base = payload.get("qty_base")
    if not is_integer(qty_base) or not 0 < qty_base <= MAX_INT:
        errors["qty_base"] = f"must be a positive integer (1 to {MAX_INT}): the type gives the direction"
    note = payload.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE_LENGTH:
        errors["note"] = f"must be a string of at most {MAX_NOTE_LENGTH} characters, or left out"
    return errors


def movement_request(payload: dict[str, Any]) -> MovementRequest:
    """Return the validated movement request, or refuse the payload naming each bad field."""
    errors = field_errors(payload)
    if errors:
        problems = "; ".join(f"{name} {problem}" for name, problem in sorted(errors.items()))
        raise ApiError(f"invalid stock movement: {problems}", fields=errors)
    return MovementRequest(
        item_id=payload["item"],
        type=payload["type"],
        qty_base=payload["qty_base"],
        note=payload.get("note", ""),
    )
