"""HTTP endpoints of the inventory app (release 1.0): plain Django views speaking JSON.

POST /api/inventory/stock-movements/  record a movement (201), or a 4xx saying why not
GET  /api/inventory/stock-movements/  list movements, newest first (?item=ID, ?limit=N)
GET  /api/inventory/items/            list items with their quantities
All of them need `Authorization: Bearer <token>`.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from apitokens.auth import token_required
from depotix_api.errors import ApiError, method_not_allowed, returns_api_errors
from inventory.models import InventoryItem, StockMovement
from inventory.movements import record_movement
from inventory.validation import json_object, movement_request

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def movement_json(movement: StockMovement) -> dict[str, Any]:
    """Return the API's representation of a movement."""
    return {
        "id": movement.pk,
        "item": movement.item_id,
        "type": movement.type,
        "qty_base": movement.qty_base,
        "note": movement.note,
        "created_by": movement.created_by.get_username() if movement.created_by else None,
        "created_at": movement.created_at.isoformat(),
    }


def item_json(item: InventoryItem) -> dict[str, Any]:
    """Return the API's representation of an item."""
    return {"id": item.pk, "name": item.name, "sku": item.sku, "quantity": item.quantity}


def positive_int_param(request: HttpRequest, name: str, default: int | None, maximum: int) -> int | None:
    """Return a positive integer query parameter, or refuse it naming the valid range."""
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiError(f"query parameter {name} must be an integer from 1 to {maximum}", fields={name: raw})
    return int(raw)


def list_movements(request: HttpRequest) -> JsonResponse:
    """Return movements, newest first, optionally of one item."""
    item_id = positive_int_param(request, "item", None, 2**63 - 1)
    limit = positive_int_param(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    movements = StockMovement.objects.select_related("created_by")
    if item_id is not None:
        movements = movements.filter(item_id=item_id)
    return JsonResponse({"results": [movement_json(m) for m in movements[:limit]]})


def create_movement(request: HttpRequest) -> JsonResponse:
    """Record a movement and return it with 201."""
    movement = record_movement(movement_request(json_object(request.body)), request.user)
    return JsonResponse(movement_json(movement), status=201)


@returns_api_errors
@token_required
def stock_movements(request: HttpRequest) -> HttpResponse:
    """Dispatch GET (list) and POST (create) on the movements collection."""
    if request.method == "POST":
        return create_movement(request)
    if request.method == "GET":
        return list_movements(request)
    return method_not_allowed(("GET", "POST"))


@returns_api_errors
@token_required
def items(request: HttpRequest) -> HttpResponse:
    """List inventory items with their current quantities."""
    if request.method != "GET":
        return method_not_allowed(("GET",))
    return JsonResponse({"results": [item_json(item) for item in InventoryItem.objects.order_by("pk")]})
