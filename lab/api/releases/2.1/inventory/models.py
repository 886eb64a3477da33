"""Inventory models of release 2.1 (migrations 0001..0009).

An item's `quantity` is the running sum of its movements, kept by
`inventory.movements.record_movement`. Changed from 1.0: StockMovement.idempotency_key;
qty_base must be > 0 (was >= 0); InventoryItem.quantity must be >= 0 (a database CHECK
now, not only the API); two indexes for the movement list and audit queries.
Changed from 2.0: InventoryItem.location, optional.
"""

from django.conf import settings
from django.db import models


class Customer(models.Model):
    """A customer; `customer_number` came in 0006 and was filled for old rows by 0007."""

    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    customer_number = models.CharField(max_length=20, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.customer_number or '-'} {self.name}"


class InventoryItem(models.Model):
    """A stocked article and how many units of it are in stock."""

    name = models.CharField(max_length=200)
    sku = models.CharField(max_length=64, unique=True)
    quantity = models.IntegerField(default=0)
    location = models.CharField(max_length=64, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gte=0),
                name="inventory_inventoryitem_quantity_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class StockMovement(models.Model):
    """One change of an item's stock: units in, units out, or an upward correction."""

    class Type(models.TextChoices):
        IN = "IN", "In"
        OUT = "OUT", "Out"
        ADJUST = "ADJUST", "Adjust"

    item = models.ForeignKey(InventoryItem, on_delete=models.PROTECT, related_name="movements")
    type = models.CharField(max_length=6, choices=Type.choices)
    qty_base = models.IntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="stock_movements",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    note = models.TextField(blank=True, default="")
    # Set when the client sent an Idempotency-Key; a repeat with that key finds this row.
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(qty_base__gt=0),
                name="inventory_stockmovement_qty_base_positive",
            ),
        ]
        indexes = [
            models.Index(fields=["item", "type", "created_at"], name="inv_move_item_type_created_idx"),
            models.Index(fields=["created_by", "created_at"], name="inv_move_creator_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.qty_base} x {self.item_id}"
