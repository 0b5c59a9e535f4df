"""Storage compatibility: what Django's RedisCache or django-redis wrote, ours reads, and back.

Each pair of caches points at the same server and database with the same KEY_PREFIX, so a
site that switches backends keeps its cache warm.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches

BACKEND = "redis_conn.django.cache.RedisCache"
VALUES: dict[str, Any] = {
    "int": 42,
    "negative": -7,
    "bool": True,
    "text": "héllo",
    "bytes": b"\x00\x01",
    "nested": {"a": [1, 2.5, None], "b": ("t", "u")},
    "long": "x" * 5000,  # compressed where a compressor is set
}
JSON_VALUES: dict[str, Any] = {k: VALUES[k] for k in ("int", "text", "long")} | {
    "doc": {"a": [1, 2.5, None]}
}

THEIRS = {
    "django": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache"},
        {},
    ),
    "django-redis": (
        {"BACKEND": "django_redis.cache.RedisCache"},
        {},
    ),
    "django-redis zlib": (
        {
            "BACKEND": "django_redis.cache.RedisCache",
            "OPTIONS": {"COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor"},
        },
        {"COMPRESSOR": "zlib", "COMPRESS_MIN_LEN": 16},
    ),
    "django-redis lzma": (
        {
            "BACKEND": "django_redis.cache.RedisCache",
            "OPTIONS": {"COMPRESSOR": "django_redis.compressors.lzma.LzmaCompressor"},
        },
        {"COMPRESSOR": "lzma", "COMPRESS_MIN_LEN": 100},
    ),
}


OPENED: list[Any] = []


@pytest.fixture(autouse=True)
def close_their_pools() -> Iterator[None]:
    """Django's RedisCache and django-redis keep their pools open: close them after a test."""
    yield
    while OPENED:
        theirs = OPENED.pop()
        if hasattr(theirs, "_cache"):  # Django's RedisCache: a pool per server index
            for pool in theirs._cache._pools.values():
                pool.disconnect()
        else:
            theirs.client.get_client().connection_pool.disconnect()


def pair(settings: Any, url: str, theirs: dict[str, Any], ours: dict[str, Any]) -> tuple[Any, Any]:
    settings.REDIS_CONNECTIONS = {"default": {"URL": url}}
    settings.CACHES = {
        "theirs": {**theirs, "LOCATION": url, "KEY_PREFIX": "site", "VERSION": 3},
        "ours": {"BACKEND": BACKEND, "KEY_PREFIX": "site", "VERSION": 3, "OPTIONS": ours},
    }
    OPENED.append(caches["theirs"])
    return caches["theirs"], caches["ours"]


@pytest.mark.parametrize("name", THEIRS)
def test_ours_reads_what_theirs_wrote(settings: Any, redis_server: Any, name: str) -> None:
    theirs, ours = pair(settings, redis_server.url, *THEIRS[name])
    theirs.set_many(VALUES, timeout=120)
    theirs.set("one", "by set")
    assert ours.get_many([*VALUES, "one"]) == {**VALUES, "one": "by set"}
    assert ours.incr("int", 8) == 50  # their raw int
    ttl = ours.ttl("text")
    assert ttl is not None and 110 < ttl <= 120
    assert ours.keys("on*") == ["one"]


@pytest.mark.parametrize("name", THEIRS)
def test_theirs_reads_what_ours_wrote(settings: Any, redis_server: Any, name: str) -> None:
    theirs, ours = pair(settings, redis_server.url, *THEIRS[name])
    ours.set_many(VALUES)
    ours.set("one", "by set")
    assert theirs.get_many([*VALUES, "one"]) == {**VALUES, "one": "by set"}
    assert theirs.incr("int", 8) == 50
    assert ours.get("int") == 50


@pytest.mark.parametrize("direction", ["ours to theirs", "theirs to ours"])
def test_json_with_django_redis(settings: Any, redis_server: Any, direction: str) -> None:
    theirs_params = {
        "BACKEND": "django_redis.cache.RedisCache",
        "OPTIONS": {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"},
    }
    theirs, ours = pair(settings, redis_server.url, theirs_params, {"SERIALIZER": "json"})
    writer, reader = (ours, theirs) if direction == "ours to theirs" else (theirs, ours)
    writer.set_many(JSON_VALUES)
    assert reader.get_many(list(JSON_VALUES)) == JSON_VALUES


def test_json_encodes_dates_as_django_redis_does(settings: Any, redis_server: Any) -> None:
    theirs_params = {
        "BACKEND": "django_redis.cache.RedisCache",
        "OPTIONS": {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"},
    }
    theirs, ours = pair(settings, redis_server.url, theirs_params, {"SERIALIZER": "json"})
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    ours.set("a", when)
    theirs.set("b", when)
    assert ours.get("a") == ours.get("b") == "2026-01-02T03:04:05"
