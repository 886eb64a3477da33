"""The token table: only a hash of each token is stored, never the token itself."""

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A named token of a user; issuing a token under the same name replaces the old one."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=64)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="apitokens_apitoken_unique_user_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"
