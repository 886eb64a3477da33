"""`manage.py seed_demo_data [--user NAME]`: a few customers, items and movements for the lab.

Idempotent: customers and items are found by their natural keys, and an item gets its
demo movements only while it has none, so a second run changes nothing and says
`unchanged`. Movements go through `record_movement`, so quantities match movements.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from inventory.models import Customer, InventoryItem, StockMovement
from inventory.movements import record_movement
from inventory.validation import MovementRequest

SEED_NOTE_PREFIX = "seed:"
CUSTOMERS = (
    ("DEMO-001", "Alpine Tools AG", "orders@alpine-tools.example"),
    ("DEMO-002", "Bergblick Hardware GmbH", "einkauf@bergblick.example"),
    ("DEMO-003", "Lakeside Builders", "stock@lakeside.example"),
)
# sku, name, units received, units shipped
ITEMS = (
    ("BOLT-M8", "Hex bolt M8x40", 500, 120),
    ("NUT-M8", "Hex nut M8", 800, 200),
    ("WASHER-8", "Washer 8.4 mm", 1000, 0),
    ("DRILL-6", "HSS drill bit 6 mm", 40, 5),
)


def seed_customers() -> int:
    """Create the demo customers that are missing; return how many were created."""
    created = 0
    for number, name, email in CUSTOMERS:
        _, was_created = Customer.objects.get_or_create(customer_number=number, defaults={"name": name, "email": email})
        created += was_created
    return created


def seed_item(sku: str, name: str, received: int, shipped: int, user: Any) -> tuple[bool, int]:
    """Create an item and its demo movements if missing; return (item created, movements made)."""
    item, created = InventoryItem.objects.get_or_create(sku=sku, defaults={"name": name, "quantity": 0})
    if StockMovement.objects.filter(item=item, note__startswith=SEED_NOTE_PREFIX).exists():
        return created, 0
    planned = [("IN", received, "seed: opening stock"), ("OUT", shipped, "seed: demo order")]
    made = 0
    for movement_type, qty, note in planned:
        if qty > 0:
            record_movement(MovementRequest(item.pk, movement_type, qty, note), user)
            made += 1
    return created, made


class Command(BaseCommand):
    help = "Create demo customers, items and movements (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", default="demo", help="user recorded as the movements' author")

    def handle(self, *args: Any, **options: Any) -> None:
        user, _ = get_user_model().objects.get_or_create(username=options["user"])
        with transaction.atomic():
            customers = seed_customers()
            items = movements = 0
            for sku, name, received, shipped in ITEMS:
                item_created, made = seed_item(sku, name, received, shipped, user)
                items += item_created
                movements += made
        if customers or items or movements:
            self.stdout.write(f"seeded: {customers} customers, {items} items, {movements} movements")
        else:
            self.stdout.write("unchanged: the demo data is present")
