"""`GET /healthz`: is this process up, which release is it, does the database answer.

Answered by a middleware placed first, not by a URL route, because health probes
(Docker's HEALTHCHECK on 127.0.0.1, the deploy's health gate, a load balancer) call it
under whatever Host header they have; host validation protects URL generation, which
this response does not do.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse

HEALTH_PATH = "/healthz"


def database_answers() -> bool:
    """Return whether the database runs a trivial query now."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        return False


def health_response() -> JsonResponse:
    """Return 200 when the database answers, else 503, with the release either way."""
    database_ok = database_answers()
    body = {"ok": database_ok, "release": settings.DEPOTIX_RELEASE, "database": database_ok}
    return JsonResponse(body, status=200 if database_ok else 503)


class HealthCheckMiddleware:
    """Serve GET/HEAD /healthz before any other middleware sees the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == HEALTH_PATH and request.method in ("GET", "HEAD"):
            return health_response()
        return self.get_response(request)
