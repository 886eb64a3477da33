"""WSGI entry point of release 2.0-broken: it imports a module this release does not ship.

2.0-broken is release 2.0 with this one file changed. It builds, and `manage.py migrate`
and `showmigrations` work (only the web server imports this file), but gunicorn cannot
load the application, so the container exits at start: runbook scenario 2, an API that
crash-loops after a deploy whose migration 0008 is already applied. The rollback has to
unapply 0008 with this very image, which is why the break must spare manage.py.
"""

import os

from depotix_api.request_metrics import instrument  # ModuleNotFoundError: the file was left out
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "depotix_api.settings")

application = instrument(get_wsgi_application())
