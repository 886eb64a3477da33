"""Release 1.1-irreversible: movement notes stripped of surrounding blanks, in place.

A data step with no way back: the raw SQL has no reverse (no reverse_sql), so Django
cannot unapply it (IrreversibleError) and the notes as they were come back only from a
backup. Its purpose in the lab is a deploy that cannot be undone by migrating back:
0009 then fails, and the undo has to restore the pre-deploy backup.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0007_populate_customer_numbers")]

    operations = [
        migrations.RunSQL("UPDATE inventory_stockmovement SET note = btrim(note) WHERE note <> btrim(note)"),
    ]
