"""The `token_required` view decorator: 401 with a clear message, or the view runs."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse

from apitokens.tokens import token_from_header, user_for_token
from depotix_api.errors import json_error

WWW_AUTHENTICATE = 'Bearer realm="depotix"'


def unauthorized(message: str) -> HttpResponse:
    """Return 401 with the challenge header HTTP requires."""
    response = json_error(401, message)
    response["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


def token_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Run the view only for a valid token; the token's user becomes `request.user`."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        if not header:
            return unauthorized("authentication required: send 'Authorization: Bearer <token>'")
        token = token_from_header(header)
        user = user_for_token(token) if token else None
        if user is None:
            return unauthorized("invalid token: send 'Authorization: Bearer <token>' with a current token")
        request.user = user
        return view(request, *args, **kwargs)

    return wrapper
