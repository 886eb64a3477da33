"""Django settings of the Depotix reference API, all taken from the environment.

The variables are the same for every release, so a deploy writes one env file whatever
the release: DATABASE_URL (+ DATABASE_PASSWORD_FILE), DJANGO_SECRET_KEY(_FILE),
DJANGO_ALLOWED_HOSTS, DJANGO_DEBUG, IDEMPOTENCY_ENABLED, DEPOTIX_RELEASE. A release
without a feature reads its flag and has nothing to switch (1.0 and IDEMPOTENCY_ENABLED).
"""

import os

from depotix_api import envconfig

_env = os.environ

SECRET_KEY = envconfig.secret_key(_env)
DEBUG = envconfig.flag(_env, "DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = envconfig.allowed_hosts(_env)
DATABASES = {"default": envconfig.database_config(_env)}

# Runbook scenario 3: operators switch idempotency off through configuration and
# recreate the container, instead of editing views.py inside it.
IDEMPOTENCY_ENABLED = envconfig.flag(_env, "IDEMPOTENCY_ENABLED", default=True)
DEPOTIX_RELEASE = _env.get("DEPOTIX_RELEASE", "").strip() or "unknown"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "inventory",
    "apitokens",
]

# No session or CSRF middleware: clients authenticate with a token header, not cookies.
MIDDLEWARE = [
    # First, so that /healthz answers before host validation.
    "depotix_api.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "depotix_api.urls"
WSGI_APPLICATION = "depotix_api.wsgi.application"
TEMPLATES: list[dict[str, object]] = []

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Everything goes to stderr, which gunicorn and Docker collect; with DEBUG off Django
# would otherwise send server errors to mail_admins, which this service does not have.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {"django": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}
