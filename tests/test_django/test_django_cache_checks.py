"""System checks of CACHES entries on redis_conn's backend: redis_conn.E020, E021, W020."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Warning

from redis_conn.django.checks import check_settings

BACKEND = "redis_conn.django.cache.RedisCache"
E020_HINT = (
    "OPTIONS of redis_conn's RedisCache: SERIALIZER ('pickle', 'json', 'msgpack', a "
    "django-redis class path or a dotted path), COMPRESSOR (None, 'zlib', 'gzip', 'lzma', "
    "'lz4', 'zstd', a django-redis class path or a dotted path), COMPRESS_MIN_LEN, "
    "PICKLE_VERSION, IGNORE_EXCEPTIONS, LOG_IGNORED_EXCEPTIONS. Connection settings (URL, "
    "pool size, timeouts) belong in REDIS_CONNECTIONS."
)


def cache_messages(settings: Any, **caches: dict[str, Any]) -> list[Any]:
    settings.CACHES = {alias: {"BACKEND": BACKEND, **params} for alias, params in caches.items()}
    return [m for m in check_settings() if m.obj.startswith("CACHES")]


def test_a_valid_cache_has_no_messages(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {"cache": {"URL": "redis://127.0.0.1:6390/1"}}
    assert cache_messages(settings, default={"LOCATION": "cache"}) == []


def test_unknown_and_bad_options_are_e020(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {"default": {"URL": "redis://127.0.0.1:6390/1"}}
    options = {"MAX_ENTRIES": 100, "COMPRESSOR": "brotli"}
    assert cache_messages(settings, default={"OPTIONS": options}) == [
        Error(
            "OPTIONS has an unknown key 'MAX_ENTRIES'; the known keys are SERIALIZER, "
            "COMPRESSOR, COMPRESS_MIN_LEN, PICKLE_VERSION, IGNORE_EXCEPTIONS, "
            "LOG_IGNORED_EXCEPTIONS.",
            hint=E020_HINT,
            obj="CACHES['default']",
            id="redis_conn.E020",
        ),
        Error(
            "COMPRESSOR 'brotli' is not one of 'zlib', 'gzip', 'lzma', 'lz4', 'zstd', nor a "
            "dotted path.",
            hint=E020_HINT,
            obj="CACHES['default']",
            id="redis_conn.E020",
        ),
    ]


def test_a_location_that_is_not_a_connection_is_e021(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": "redis://127.0.0.1:6390/1"},
        "users": {"ALIAS": "default"},
    }
    assert cache_messages(settings, default={"LOCATION": "redis://127.0.0.1:6379/1"}) == [
        Error(
            "CACHES['default'] has LOCATION 'redis://127.0.0.1:6379/1', which is not a "
            "connection of REDIS_CONNECTIONS.",
            hint="Set LOCATION to one of 'default', 'users' (or leave it out for 'default').",
            obj="CACHES['default']",
            id="redis_conn.E021",
        )
    ]


def test_a_fake_connection_while_debug_is_off_is_w020(settings: Any) -> None:
    settings.DEBUG = False
    settings.REDIS_CONNECTIONS = {"dev": {"FAKE": True}, "sessions": {"ALIAS": "dev"}}
    assert cache_messages(settings, default={"LOCATION": "sessions"}) == [
        Warning(
            "CACHES['default'] is on Redis connection 'sessions', which is FAKE while DEBUG is "
            "False: each worker process has a cache of its own, so cached values and sessions "
            "differ between workers and are lost on restart.",
            hint="Give connection 'dev' a URL of a real server, or silence redis_conn.W020.",
            obj="CACHES['default']",
            id="redis_conn.W020",
        )
    ]
    settings.DEBUG = True
    assert cache_messages(settings, default={"LOCATION": "sessions"}) == []


def test_other_backends_are_not_judged(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"X": 1}}
    }
    assert [m for m in check_settings() if m.obj.startswith("CACHES")] == []
