"""Release 1.1-irreversible: a required source on every movement, added the classic wrong way.

The column is NOT NULL without a default, so PostgreSQL refuses it on a table that has
rows ("column contains null values") and the migration fails after 0008 is applied. The
reverse exists; it never gets the chance to run.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0008_trim_movement_notes")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE inventory_stockmovement ADD COLUMN source varchar(16) NOT NULL",
            reverse_sql="ALTER TABLE inventory_stockmovement DROP COLUMN source",
        ),
    ]
