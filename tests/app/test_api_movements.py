"""POST and GET /api/inventory/stock-movements/ of release 2.0, served by gunicorn.

Every refusal must be a 4xx with a message that says what is wrong, and must write
nothing: no movement, no change of quantity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from app_harness import Auth, LiveApi

MOVEMENTS = "/api/inventory/stock-movements/"


def test_in_movement_is_recorded_and_raises_the_quantity(live_api: LiveApi) -> None:
    item_id = live_api.new_item(quantity=5)

    response = live_api.client.post_movement({"item": item_id, "type": "IN", "qty_base": 10, "note": "delivery 17"})

    assert response.status == 201
    assert response.body["item"] == item_id
    assert response.body["type"] == "IN"
    assert response.body["qty_base"] == 10
    assert response.body["note"] == "delivery 17"
    assert response.body["created_by"] == "lab-client"
    assert live_api.quantity(item_id) == 15
    assert live_api.database.query(
        "SELECT type, qty_base, note FROM inventory_stockmovement WHERE id = %s", (response.body["id"],)
    ) == [("IN", 10, "delivery 17")]


@pytest.mark.parametrize(("movement_type", "expected"), [("OUT", 2), ("ADJUST", 9)])
def test_out_lowers_and_adjust_raises_the_quantity(live_api: LiveApi, movement_type: str, expected: int) -> None:
    item_id = live_api.new_item(quantity=6)

    response = live_api.client.post_movement(
        {"item": item_id, "type": movement_type, "qty_base": 4 if movement_type == "OUT" else 3}
    )

    assert response.status == 201
    assert live_api.quantity(item_id) == expected


def test_out_of_the_whole_stock_leaves_zero(live_api: LiveApi) -> None:
    item_id = live_api.new_item(quantity=4)

    assert live_api.client.post_movement({"item": item_id, "type": "OUT", "qty_base": 4}).status == 201
    assert live_api.quantity(item_id) == 0


def test_out_beyond_stock_is_refused_with_409_and_writes_nothing(live_api: LiveApi) -> None:
    item_id = live_api.new_item(quantity=3)

    response = live_api.client.post_movement({"item": item_id, "type": "OUT", "qty_base": 4})

    assert response.status == 409
    assert "insufficient stock" in response.body["error"]
    assert "has 3" in response.body["error"]
    assert live_api.quantity(item_id) == 3
    assert live_api.movement_count(item_id) == 0


ITEM = "<the test's item>"  # replaced by the id of an item holding 10 units
QTY_MESSAGE = "qty_base must be a positive integer"


@dataclass(frozen=True)
class BadRequest:
    """One way a client gets a movement request wrong, and the refusal it must get."""

    case: str
    status: int
    message: str
    payload: dict[str, Any] | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    token: str | Auth | None = Auth.CLIENT_TOKEN


BAD_REQUESTS = [
    BadRequest("malformed JSON", 400, "malformed JSON", raw=b'{"item": 1, "type": "IN",'),
    BadRequest("empty body", 400, "malformed JSON", raw=b""),
    BadRequest("body not an object", 400, "must be a JSON object", raw=b"[1, 2]"),
    BadRequest(
        "unknown item",
        400,
        "no inventory item with id 9000000000",
        {"item": 9_000_000_000, "type": "IN", "qty_base": 1},
    ),
    BadRequest("missing item", 400, "item must be the id of an inventory item", {"type": "IN", "qty_base": 1}),
    BadRequest(
        "item as string", 400, "item must be the id of an inventory item", {"item": "1", "type": "IN", "qty_base": 1}
    ),
    BadRequest("negative qty_base", 400, QTY_MESSAGE, {"item": ITEM, "type": "IN", "qty_base": -5}),
    BadRequest("zero qty_base", 400, QTY_MESSAGE, {"item": ITEM, "type": "OUT", "qty_base": 0}),
    BadRequest("missing qty_base", 400, QTY_MESSAGE, {"item": ITEM, "type": "IN"}),
    BadRequest("qty_base as string", 400, QTY_MESSAGE, {"item": ITEM, "type": "IN", "qty_base": "10"}),
    BadRequest("qty_base as boolean", 400, QTY_MESSAGE, {"item": ITEM, "type": "IN", "qty_base": True}),
    BadRequest("qty_base as fraction", 400, QTY_MESSAGE, {"item": ITEM, "type": "IN", "qty_base": 1.5}),
    BadRequest("qty_base too large", 400, QTY_MESSAGE, {"item": ITEM, "type": "IN", "qty_base": 2**31}),
    BadRequest("wrong type", 400, "type must be one of IN, OUT, ADJUST", {"item": ITEM, "type": "MOVE", "qty_base": 1}),
    BadRequest(
        "lower-case type", 400, "type must be one of IN, OUT, ADJUST", {"item": ITEM, "type": "in", "qty_base": 1}
    ),
    BadRequest(
        "note not a string", 400, "note must be a string", {"item": ITEM, "type": "IN", "qty_base": 1, "note": 5}
    ),
    BadRequest(
        "missing token", 401, "authentication required", {"item": ITEM, "type": "IN", "qty_base": 1}, token=None
    ),
    BadRequest("unknown token", 401, "invalid token", {"item": ITEM, "type": "IN", "qty_base": 1}, token="nope"),
    BadRequest(
        "wrong auth scheme",
        401,
        "invalid token",
        {"item": ITEM, "type": "IN", "qty_base": 1},
        token=None,
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    ),
    BadRequest(
        "empty idempotency key",
        400,
        "Idempotency-Key",
        {"item": ITEM, "type": "IN", "qty_base": 1},
        headers={"Idempotency-Key": ""},
    ),
    BadRequest(
        "idempotency key too long",
        400,
        "idempotency_key",
        {"item": ITEM, "type": "IN", "qty_base": 1, "idempotency_key": "k" * 256},
    ),
    BadRequest(
        "idempotency key not a string",
        400,
        "idempotency_key",
        {"item": ITEM, "type": "IN", "qty_base": 1, "idempotency_key": 7},
    ),
    BadRequest(
        "header and field keys differ",
        400,
        "differ",
        {"item": ITEM, "type": "IN", "qty_base": 1, "idempotency_key": "a"},
        headers={"Idempotency-Key": "b"},
    ),
]


def with_item(payload: dict[str, Any] | None, item_id: int) -> dict[str, Any] | None:
    """Return the payload with the ITEM placeholder replaced by a real item id."""
    if payload is None:
        return None
    return {key: item_id if value == ITEM else value for key, value in payload.items()}


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=[bad.case for bad in BAD_REQUESTS])
def test_bad_request_is_refused_with_a_clear_message_and_writes_nothing(live_api: LiveApi, bad: BadRequest) -> None:
    item_id = live_api.new_item(quantity=10)
    total_before = live_api.movement_count()

    response = live_api.client.request(
        "POST", MOVEMENTS, with_item(bad.payload, item_id), raw=bad.raw, headers=bad.headers, token=bad.token
    )

    assert response.status == bad.status
    assert bad.message in response.body["error"]
    assert live_api.movement_count() == total_before
    assert live_api.quantity(item_id) == 10


def test_missing_token_gets_a_bearer_challenge(live_api: LiveApi) -> None:
    response = live_api.client.request("GET", MOVEMENTS, token=None)

    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_scheme_is_accepted_like_bearer(live_api: LiveApi) -> None:
    response = live_api.client.request(
        "GET", MOVEMENTS, token=None, headers={"Authorization": f"Token {live_api.client.token}"}
    )

    assert response.status == 200


def test_get_lists_movements_of_an_item_newest_first(live_api: LiveApi) -> None:
    item_id = live_api.new_item(quantity=0)
    first = live_api.client.post_movement({"item": item_id, "type": "IN", "qty_base": 2}).body["id"]
    second = live_api.client.post_movement({"item": item_id, "type": "OUT", "qty_base": 1}).body["id"]
    live_api.client.post_movement({"item": live_api.new_item(quantity=0), "type": "IN", "qty_base": 1})

    response = live_api.client.request("GET", f"{MOVEMENTS}?item={item_id}")

    assert response.status == 200
    assert [movement["id"] for movement in response.body["results"]] == [second, first]


def test_get_refuses_a_bad_limit(live_api: LiveApi) -> None:
    response = live_api.client.request("GET", f"{MOVEMENTS}?limit=0")

    assert response.status == 400
    assert "limit" in response.body["error"]


def test_other_methods_get_405_with_allow_header(live_api: LiveApi) -> None:
    response = live_api.client.request("PUT", MOVEMENTS, {})

    assert response.status == 405
    assert response.headers["Allow"] == "GET, POST"


def test_items_endpoint_reports_current_quantities(live_api: LiveApi) -> None:
    item_id = live_api.new_item(quantity=8)
    live_api.client.post_movement({"item": item_id, "type": "OUT", "qty_base": 3})

    items = live_api.client.request("GET", "/api/inventory/items/").body["results"]

    assert {item["id"]: item["quantity"] for item in items}[item_id] == 5


def test_unknown_path_is_a_json_404(live_api: LiveApi) -> None:
    response = live_api.client.request("GET", "/api/nowhere/")

    assert response.status == 404
    assert "no such endpoint" in response.body["error"]
