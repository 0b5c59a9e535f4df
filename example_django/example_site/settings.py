"""Settings of the example site: no database, four Redis connection names.

By default every connection is an in-process FAKE server (fakeredis), so the site runs with
nothing but ``pip install -e .[django]``. Give URLs to run it on real servers::

    REDIS_URL=redis://127.0.0.1:6390/0            # "default": page-hit counters
    REDIS_ACTIVITY_URL=redis://127.0.0.1:6391/0   # "activity": per-user feeds
    REDIS_CACHE_URL=redis://127.0.0.1:7000        # "cache" ...
    REDIS_CACHE_CLUSTER=1                         # ... is a Redis Cluster (node URL above)

"sessions" is an alias of "default": another name, the same pool. Django's cache API (a cached
page) and Django's sessions (the cache session engine) use "default" too, through
redis_conn's cache backend: the same pool as the page counters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# Demo defaults; a deployment sets DJANGO_SECRET_KEY and DJANGO_DEBUG=0.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-site-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
USE_TZ = True

INSTALLED_APPS = ["redis_conn.django"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "redis_conn.django.middleware.RequestPipelineMiddleware",
]
# Error pages and 500 e-mails list settings: mask passwords in REDIS_CONNECTIONS URLs.
DEFAULT_EXCEPTION_REPORTER_FILTER = "redis_conn.django.reporting.SafeExceptionReporterFilter"
ROOT_URLCONF = "example_site.urls"
WSGI_APPLICATION = "example_site.wsgi.application"
DATABASES: dict[str, dict[str, Any]] = {}
# Django's cache on the "default" connection, and the sessions in it (no database needed).
CACHES = {
    "default": {
        "BACKEND": "redis_conn.django.cache.RedisCache",
        "LOCATION": "default",
        "KEY_PREFIX": "example",
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"


def connections_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, dict[str, Any]]:
    """REDIS_CONNECTIONS from the environment: a URL where one is given, else FAKE."""

    def connection(variable: str, **extra: Any) -> dict[str, Any]:
        url = environ.get(variable)
        server: dict[str, Any] = {"URL": url, **extra} if url else {"FAKE": True}
        return {**server, "OPTIONS": {"decode_responses": True}}

    cluster = environ.get("REDIS_CACHE_CLUSTER", "") in ("1", "true", "yes")
    return {
        "default": connection("REDIS_URL"),
        "activity": connection("REDIS_ACTIVITY_URL"),
        "sessions": {"ALIAS": "default"},
        "cache": connection("REDIS_CACHE_URL", **({"CLUSTER": True} if cluster else {})),
    }


REDIS_CONNECTIONS = connections_from_env()
