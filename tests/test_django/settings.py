"""Django settings for the tests: no database, the redis_conn app and its middleware.

REDIS_CONNECTIONS is a fake server by default; tests that need real servers point the
connections at them with ``override_settings`` (see conftest.py).
"""

SECRET_KEY = "redis_conn-tests-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "redis_conn.django",
]
MIDDLEWARE = ["redis_conn.django.middleware.RequestPipelineMiddleware"]
ROOT_URLCONF = "tests.test_django.urls"
DATABASES: dict[str, dict[str, str]] = {}
REDIS_CONNECTIONS = {"default": {"FAKE": True}}
