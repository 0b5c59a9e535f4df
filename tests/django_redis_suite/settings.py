"""django-redis's test settings (``tests/settings/sqlite*.py``) with BACKEND and LOCATION changed.

One module for every configuration: DJANGO_REDIS_SUITE_CONFIG names django-redis's settings
file (``sqlite``, ``sqlite_json``, ``sqlite_zlib`` ...), whose SERIALIZER and COMPRESSOR class
paths are kept as django-redis spells them. The server comes from DJANGO_REDIS_SUITE_URL
(``redis://host:port``), the unix socket from DJANGO_REDIS_SUITE_UNIX, and
DJANGO_REDIS_SUITE_DOWN_URL is a port where nothing listens (the ``doesnotexist`` cache).
Each configuration has a database of its own, so that they can run side by side.
"""

import os

CONFIG = os.environ["DJANGO_REDIS_SUITE_CONFIG"]
URL = os.environ["DJANGO_REDIS_SUITE_URL"].rstrip("/")

# As django-redis's settings files: the OPTIONS each one sets, and its database number.
CONFIGS = {
    "sqlite": (1, {}),
    "sqlite_gzip": (2, {"COMPRESSOR": "django_redis.compressors.gzip.GzipCompressor"}),
    "sqlite_json": (4, {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"}),
    "sqlite_lz4": (5, {"COMPRESSOR": "django_redis.compressors.lz4.Lz4Compressor"}),
    "sqlite_msgpack": (6, {"SERIALIZER": "django_redis.serializers.msgpack.MSGPackSerializer"}),
    "sqlite_usock": (7, {}),
    "sqlite_zlib": (12, {"COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor"}),
    "sqlite_zstd": (13, {"COMPRESSOR": "django_redis.compressors.zstd.ZStdCompressor"}),
}
DB, OPTIONS = CONFIGS[CONFIG]

SECRET_KEY = "django_tests_secret_key"
REDIS_CONNECTIONS = {
    "default": (
        {"URL": f"unix://{os.environ['DJANGO_REDIS_SUITE_UNIX']}?db={DB}"}
        if CONFIG == "sqlite_usock"
        else {"URL": f"{URL}/{DB}"}
    ),
    "sample": {"ALIAS": "default"},
    # Nothing listens there; no retries, so that each call fails at once.
    "doesnotexist": {"URL": f"{os.environ['DJANGO_REDIS_SUITE_DOWN_URL']}/{DB}", "RETRY": 0},
}
BACKEND = "redis_conn.django.cache.RedisCache"
CACHES = {
    "default": {"BACKEND": BACKEND, "LOCATION": "default", "OPTIONS": dict(OPTIONS)},
    "doesnotexist": {"BACKEND": BACKEND, "LOCATION": "doesnotexist", "OPTIONS": dict(OPTIONS)},
    "sample": {"BACKEND": BACKEND, "LOCATION": "sample", "OPTIONS": dict(OPTIONS)},
    "with_prefix": {
        "BACKEND": BACKEND,
        "LOCATION": "default",
        "OPTIONS": dict(OPTIONS),
        "KEY_PREFIX": "test-prefix",
    },
}
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
USE_TZ = False
