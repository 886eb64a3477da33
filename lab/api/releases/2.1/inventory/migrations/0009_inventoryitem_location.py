"""Release 2.1: an optional storage location per item.

Additive and reversible without loss of anything older: the column is nullable, so
existing rows need no value; unapplying drops it (and only the locations entered since).
Its purpose in the lab is a rollback across two migrations (0009, then 0008).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0008_add_idempotency_and_constraints")]

    operations = [
        migrations.AddField(
            model_name="inventoryitem",
            name="location",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
    ]
