"""Give every customer without a number the generated one, `C` + its id on six digits.

Reversible without loss: the reverse clears exactly the numbers this step would have
generated (the number still equals the generated one), and keeps numbers set by hand.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def generated_number(customer_id: int) -> str:
    """Return the number this migration gives the customer with that id."""
    return f"C{customer_id:06d}"


def populate_customer_numbers(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Number each customer that has none."""
    customer_model = apps.get_model("inventory", "Customer")
    for customer in customer_model.objects.filter(customer_number__isnull=True).only("pk"):
        customer.customer_number = generated_number(customer.pk)
        customer.save(update_fields=["customer_number"])


def clear_generated_numbers(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Remove the numbers populate_customer_numbers gives, leaving hand-set ones."""
    customer_model = apps.get_model("inventory", "Customer")
    for customer in customer_model.objects.filter(customer_number__isnull=False).only("pk", "customer_number"):
        if customer.customer_number == generated_number(customer.pk):
            customer.customer_number = None
            customer.save(update_fields=["customer_number"])


class Migration(migrations.Migration):
    dependencies = [("inventory", "0006_customer_customer_number")]

    operations = [
        migrations.RunPython(populate_customer_numbers, clear_generated_numbers),
    ]
