"""WSGI entry point that gunicorn serves (`depotix_api.wsgi:application`).

The URL conf, and with it every view, is imported here at worker start: a release whose
views cannot be imported then fails at start, where the deploy's health gate sees it,
instead of answering 500 to its first real request.
"""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "depotix_api.settings")

application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 (the attribute access imports the views)
