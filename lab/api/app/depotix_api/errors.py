"""JSON errors for an API that has no HTML pages.

`ApiError` is what views raise to refuse a request; `json_error` is the one shape every
refusal has: `{"error": "<what is wrong and what to do>", "fields": {...}}`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec

from django.http import HttpRequest, HttpResponse, JsonResponse

P = ParamSpec("P")


class ApiError(Exception):
    """A refusal with an HTTP status, a message for the caller and optional field errors."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if status is not None:
            self.status = status


def json_error(status: int, message: str, fields: dict[str, str] | None = None) -> JsonResponse:
    """Return the API's error body with the given status."""
    body: dict[str, object] = {"error": message}
    if fields:
        body["fields"] = fields
    return JsonResponse(body, status=status)


def returns_api_errors(view: Callable[P, HttpResponse]) -> Callable[P, HttpResponse]:
    """Turn an `ApiError` raised by a view into its JSON response."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        try:
            return view(*args, **kwargs)
        except ApiError as exc:
            return json_error(exc.status, exc.message, exc.fields)

    return wrapper


def method_not_allowed(allowed: tuple[str, ...]) -> JsonResponse:
    """Return 405 with the Allow header set, as HTTP requires."""
    response = json_error(405, f"method not allowed: use {', '.join(allowed)}")
    response["Allow"] = ", ".join(allowed)
    return response


def bad_request(request: HttpRequest, exception: Exception) -> JsonResponse:
    """handler400: e.g. a Host header not in DJANGO_ALLOWED_HOSTS."""
    return json_error(400, "bad request (check the Host header against DJANGO_ALLOWED_HOSTS)")


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    """handler404."""
    return json_error(404, f"no such endpoint: {request.path}")


def server_error(request: HttpRequest) -> JsonResponse:
    """handler500: the traceback goes to the log, never to the caller."""
    return json_error(500, "internal server error (see the server log)")
