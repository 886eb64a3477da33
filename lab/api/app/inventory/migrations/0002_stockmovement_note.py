"""A free-text note on each movement (delivery note number, reason for a correction)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="stockmovement",
            name="note",
            field=models.TextField(blank=True, default=""),
        ),
    ]
