"""App config of the inventory app."""

from django.apps import AppConfig


class InventoryConfig(AppConfig):
    """Items, customers and stock movements; its migrations are the runbook's 0001..0008."""

    name = "inventory"
    default_auto_field = "django.db.models.BigAutoField"
