"""A customer number for invoices; nullable until 0007 fills it for existing customers."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_inventoryitem_updated_at")]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="customer_number",
            field=models.CharField(blank=True, max_length=20, null=True, unique=True),
        ),
    ]
