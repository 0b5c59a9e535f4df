"""Django settings for the tests: no database, the redis_conn app and its middleware.

REDIS_CONNECTIONS is a fake server by default; tests that need real servers point the
connections at them with ``override_settings`` (see conftest.py), or, for a ``manage.py``
subprocess, with the environment variable REDIS_CONN_TEST_CONNECTIONS (JSON).
"""

import json
import os

SECRET_KEY = "redis_conn-tests-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "redis_conn.django",
]
MIDDLEWARE = ["redis_conn.django.middleware.RequestPipelineMiddleware"]
# Error reports list settings: mask the passwords in REDIS_CONNECTIONS URLs (check W004).
DEFAULT_EXCEPTION_REPORTER_FILTER = "redis_conn.django.reporting.SafeExceptionReporterFilter"
ROOT_URLCONF = "tests.test_django.urls"
DATABASES: dict[str, dict[str, str]] = {}
# The subprocess tests of manage.py pass their connections in the environment.
REDIS_CONNECTIONS = json.loads(os.environ.get("REDIS_CONN_TEST_CONNECTIONS", "null")) or {
    "default": {"FAKE": True}
}
