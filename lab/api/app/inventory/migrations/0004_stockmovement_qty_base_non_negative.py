"""The database refuses a negative qty_base; the type, not the sign, gives the direction."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0003_stockmovement_created_by")]

    operations = [
        migrations.AddConstraint(
            model_name="stockmovement",
            constraint=models.CheckConstraint(
                condition=models.Q(qty_base__gte=0),
                name="inventory_stockmovement_qty_base_non_negative",
            ),
        ),
    ]
