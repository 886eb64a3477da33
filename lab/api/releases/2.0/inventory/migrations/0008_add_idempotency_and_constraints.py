"""Release 2.0: idempotency keys on movements, stricter CHECKs, indexes for the hot queries.

Forwards, in this order:
1. Data step: lock the item and movement tables (in the order the API's writes take
   them: no deadlock with the release serving meanwhile), abort the whole migration
   when a movement has qty_base = 0 (the new CHECK would refuse it and only a person can
   say what the row should have been), then set negative item quantities to 0 so the new
   quantity CHECK can be added.
2. A unique, nullable `idempotency_key` on stock movements.
3. qty_base CHECK tightened from >= 0 to > 0.
4. CHECK inventory_inventoryitem_quantity_non_negative (quantity >= 0).
5. Indexes on (item, type, created_at) and (created_by, created_at).

Backwards, every schema step has an exact reverse; the data step's reverse is a no-op:
the negative quantities it set to 0 are not restored. That step is lossy, and only a
backup taken before 0008 brings those values back. On PostgreSQL the migration runs in
one transaction, so an abort leaves the database exactly as it was.
"""

from django.conf import settings
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


class ZeroQuantityMovementsError(Exception):
    """Movements with qty_base = 0 exist; 0008 cannot add its qty_base > 0 CHECK."""


def check_movements_and_clamp_quantities(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Refuse to go on while qty_base = 0 rows exist; set negative item quantities to 0."""
    movement_model = apps.get_model("inventory", "StockMovement")
    item_model = apps.get_model("inventory", "InventoryItem")
    # The old release serves while this runs. Its writes lock the item, then insert the
    # movement; the steps below lock the movement table, then the item table. Taking both
    # locks first, in the writes' order, means the two never wait for each other in a
    # circle (a deadlock PostgreSQL would end by failing a request or this migration):
    # writes wait until this transaction commits.
    if schema_editor.connection.vendor == "postgresql":
        tables = (item_model._meta.db_table, movement_model._meta.db_table)
        names = tuple(map(schema_editor.quote_name, tables))
        schema_editor.execute("LOCK TABLE %s, %s IN ACCESS EXCLUSIVE MODE" % names)
    zero_rows = movement_model.objects.filter(qty_base=0).count()
    if zero_rows:
        raise ZeroQuantityMovementsError(
            f"0008 aborted: {zero_rows} stock movement(s) have qty_base = 0, which the new "
            "CHECK (qty_base > 0) refuses. Correct or delete them "
            "(SELECT id, item_id, type, note FROM inventory_stockmovement WHERE qty_base = 0), "
            "then migrate again. Nothing was changed."
        )
    item_model.objects.filter(quantity__lt=0).update(quantity=0)


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("inventory", "0007_populate_customer_numbers"),
    ]

    operations = [
        # Reverse is deliberately a no-op: the clamped quantities cannot be recomputed.
        migrations.RunPython(check_movements_and_clamp_quantities, migrations.RunPython.noop),
        migrations.AddField(
            model_name="stockmovement",
            name="idempotency_key",
            field=models.CharField(blank=True, max_length=255, null=True, unique=True),
        ),
        migrations.RemoveConstraint(
            model_name="stockmovement",
            name="inventory_stockmovement_qty_base_non_negative",
        ),
        migrations.AddConstraint(
            model_name="stockmovement",
            constraint=models.CheckConstraint(
                condition=models.Q(qty_base__gt=0),
                name="inventory_stockmovement_qty_base_positive",
            ),
        ),
        migrations.AddConstraint(
            model_name="inventoryitem",
            constraint=models.CheckConstraint(
                condition=models.Q(quantity__gte=0),
                name="inventory_inventoryitem_quantity_non_negative",
            ),
        ),
        migrations.AddIndex(
            model_name="stockmovement",
            index=models.Index(fields=["item", "type", "created_at"], name="inv_move_item_type_created_idx"),
        ),
        migrations.AddIndex(
            model_name="stockmovement",
            index=models.Index(fields=["created_by", "created_at"], name="inv_move_creator_created_idx"),
        ),
    ]
