"""App config of the API token app."""

from django.apps import AppConfig


class ApiTokensConfig(AppConfig):
    """Bearer tokens, stored as hashes, each tied to a Django user."""

    name = "apitokens"
    default_auto_field = "django.db.models.BigAutoField"
