"""Record a stock movement and apply it to the item's quantity, atomically.

The item row is locked (`SELECT ... FOR UPDATE`) before its quantity is read, so two
concurrent OUT movements on one item are applied one after the other: the second sees
the first's result and is refused if the stock no longer covers it. Without the lock
both would read the same quantity and together take out more than there was.
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from depotix_api.errors import ApiError
from inventory.models import InventoryItem, StockMovement
from inventory.validation import MAX_INT, MovementRequest


class InsufficientStockError(ApiError):
    """An OUT movement larger than the stock: refused, never a negative quantity."""

    status = 409


def quantity_after(quantity: int, movement_type: str, qty_base: int) -> int:
    """Return the item's quantity after the movement; IN and ADJUST add, OUT subtracts."""
    if movement_type == StockMovement.Type.OUT:
        return quantity - qty_base
    return quantity + qty_base


def checked_quantity_after(item: InventoryItem, request: MovementRequest) -> int:
    """Return the new quantity, or refuse a movement that would leave it out of range."""
    new_quantity = quantity_after(item.quantity, request.type, request.qty_base)
    if new_quantity < 0:
        raise InsufficientStockError(
            f"insufficient stock: item {item.pk} ({item.sku}) has {item.quantity}, cannot take out {request.qty_base}",
            fields={"qty_base": f"at most {max(item.quantity, 0)} for this item now"},
        )
    if new_quantity > MAX_INT:
        raise ApiError(f"item {item.pk} ({item.sku}) cannot hold more than {MAX_INT} units", status=409)
    return new_quantity


def locked_item(item_id: int) -> InventoryItem:
    """Return the item with its row locked until the transaction ends, or refuse the id."""
    item = InventoryItem.objects.select_for_update().filter(pk=item_id).first()
    if item is None:
        raise ApiError(f"unknown item: no inventory item with id {item_id}", fields={"item": "no such item"})
    return item


def record_movement(request: MovementRequest, user: AbstractBaseUser | None) -> StockMovement:
    """Create the movement and update the item's quantity in one transaction."""
    with transaction.atomic():
        item = locked_item(request.item_id)
        item.quantity = checked_quantity_after(item, request)
        movement = StockMovement.objects.create(
            item=item,
            type=request.type,
            qty_base=request.qty_base,
            note=request.note,
            created_by=user,
        )
        item.save(update_fields=["quantity", "updated_at"])
    return movement
