"""Settings for Django's runtests.py (``--settings=redis_conn_cache_suite.settings``).

As Django's own ``tests/test_sqlite.py``, plus a Redis server from REDIS_CONN_SUITE_URL
(``redis://host:port``, no db): Django's RedisCache on db 0 (for Django's ``RedisCacheTests``,
which sets ``db`` in OPTIONS), each of our classes on a db of its own: Django's tests rely on
``clear()`` wiping every prefix (FLUSHDB), ours clears only the cache's own keys.
``redis_conn.django`` is deliberately not installed: the backend must find REDIS_CONNECTIONS
on its own.
"""

import os

URL = os.environ["REDIS_CONN_SUITE_URL"].rstrip("/")

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3"},
    "other": {"ENGINE": "django.db.backends.sqlite3"},
}
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False

REDIS_CONNECTIONS = {
    "default": {"URL": f"{URL}/1"},
    "cache": {"ALIAS": "default"},
    "async_cache": {"URL": f"{URL}/2"},
    "sessions": {"URL": f"{URL}/3"},
    # CLIENT_CACHE: the same tests with reads answered from process memory.
    "cached": {"URL": f"{URL}/4", "CLIENT_CACHE": True},
    "async_cached": {"URL": f"{URL}/5", "CLIENT_CACHE": True, "MULTIPLEX": True},
}
CACHES = {
    # Picked up by Django's cache.tests as the configuration of its RedisCacheTests.
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": URL},
}
TEST_RUNNER = "redis_conn_cache_suite.runner.RecordingRunner"
