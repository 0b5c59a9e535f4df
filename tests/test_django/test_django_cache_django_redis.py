"""A django-redis settings file and django-redis code on redis_conn's cache backend.

django-redis's own suite runs in test_django_cache_django_redis_suite.py; these tests pin what
a site that switches relies on: its serializer and compressor class paths write what
django-redis writes (read both ways, byte for byte where it can be), data structures,
``get_redis_connection``, LOG_IGNORED_EXCEPTIONS's one log record, incr past 64 bits, and
``manage.py check`` with django-redis's OPTIONS.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from typing import Any

import django_redis
import pytest
import redis
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import SystemCheckError

import redis_conn
from redis_conn.django import cache_options
from redis_conn.registry import connections

BACKEND = "redis_conn.django.cache.RedisCache"
PATHS = {
    "pickle": {"SERIALIZER": "django_redis.serializers.pickle.PickleSerializer"},
    "json": {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"},
    "msgpack": {"SERIALIZER": "django_redis.serializers.msgpack.MSGPackSerializer"},
    "zlib": {"COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor"},
    "gzip": {"COMPRESSOR": "django_redis.compressors.gzip.GzipCompressor"},
    "lzma": {"COMPRESSOR": "django_redis.compressors.lzma.LzmaCompressor"},
    "lz4": {"COMPRESSOR": "django_redis.compressors.lz4.Lz4Compressor"},
    "zstd": {"COMPRESSOR": "django_redis.compressors.zstd.ZStdCompressor"},
}
VALUES = {"int": 7, "text": "héllo", "long": "x" * 500, "doc": {"a": [1, 2.5, None]}}


@pytest.fixture
def both(settings: Any, redis_server: Any) -> Iterator[Any]:
    """django-redis's cache and ours on one database, with the same OPTIONS."""

    def make(options: dict[str, Any]) -> tuple[Any, Any]:
        settings.REDIS_CONNECTIONS = {"default": {"URL": redis_server.url}}
        settings.CACHES = {
            "default": {"BACKEND": BACKEND, "LOCATION": "default", "OPTIONS": dict(options)},
            "theirs": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_server.url,
                "OPTIONS": dict(options),
            },
        }
        made.append(caches["theirs"])
        return caches["theirs"], caches["default"]

    made: list[Any] = []
    yield make
    for theirs in made:
        theirs.client.get_client().connection_pool.disconnect()


@pytest.mark.parametrize("name", PATHS)
def test_django_redis_class_paths_store_as_django_redis(both: Any, name: str) -> None:
    theirs, ours = both(PATHS[name])
    ours.set_many(VALUES)
    assert theirs.get_many(list(VALUES)) == VALUES
    theirs.set_many({f"t-{k}": v for k, v in VALUES.items()})
    assert ours.get_many([f"t-{k}" for k in VALUES]) == {f"t-{k}": v for k, v in VALUES.items()}
    raw = ours.client.get_client()
    for key in VALUES:  # the same bytes: same protocol, format and compression threshold
        assert without_gzip_time(raw.get(f":1:{key}")) == without_gzip_time(raw.get(f":1:t-{key}"))


def without_gzip_time(stored: bytes) -> bytes:
    """A gzip member's header carries a time (bytes 4-8) and the writer's OS (byte 9):
    django-redis writes the clock's time, ours 0 (and Python then writes OS 255), so that a
    compressed set member is the same bytes whenever it is written. The rest is the same."""
    if stored[:2] == b"\x1f\x8b":
        return stored[:4] + bytes(4) + stored[8:9] + bytes(1) + stored[10:]
    return stored


def test_data_structures_are_readable_both_ways(both: Any) -> None:
    theirs, ours = both(PATHS["zlib"])
    assert ours.sadd("s", 1, "a", ("t", 2)) == 3
    assert theirs.smembers("s") == {1, "a", ("t", 2)}
    theirs.zadd("z", {"x": 1.0, ("y",): 2.0})
    assert ours.zrange("z", 0, -1, withscores=True) == [("x", 1.0), (("y",), 2.0)]
    ours.hset("h", "f", {"deep": [1]}, version=2)
    assert theirs.hkeys("h", version=2) == ["f"]
    assert ours.hget("h", "f", version=2) == {"deep": [1]}
    assert ours.sdiffstore("d", "s", "nothing", version_keys=1) == 3
    assert theirs.smembers("d") == {1, "a", ("t", 2)}


def test_get_redis_connection_and_client_give_the_connections_client(both: Any) -> None:
    _, ours = both({})
    client = redis_conn.get_redis("default")
    assert django_redis.get_redis_connection("default") is client
    assert ours.client.get_client(write=True) is client
    assert ours.client.get_client_with_index(write=False) == (client, 0)
    assert ours.client.make_key("k", version=3) == ":3:k"


def test_client_keyword_queues_on_a_pipeline(both: Any) -> None:
    _, ours = both({})
    pipe = ours.client.get_client().pipeline()
    ours.set("a", 1, client=pipe)
    ours.set_many({"b": "bee"}, client=pipe)
    ours.sadd("s", "m", client=pipe)
    assert ours.get_many(["a", "b"]) == {}  # queued, not sent
    pipe.execute()
    assert ours.get_many(["a", "b"]) == {"a": 1, "b": "bee"}
    assert ours.smembers("s") == {"m"}
    assert ours.delete_many(["a", "b", "c"]) == 2


def test_incr_beyond_signed_64_bits_keeps_the_ttl(both: Any) -> None:
    _, ours = both({})
    ours.set("n", 2**63 - 1, timeout=100)
    assert ours.incr("n") == 2**63
    assert ours.decr("n", 3) == 2**63 - 3  # back inside: INCRBY again
    assert ours.incr("n", 2**64) == 2**63 - 3 + 2**64
    assert ours.get("n") == 2**63 - 3 + 2**64
    assert 90 < ours.ttl("n") <= 100
    ours.set("text", "abc")
    with pytest.raises(redis.ResponseError):
        ours.incr("text")
    assert ours.incr("fresh", 5, ignore_key_check=True) == 5
    with pytest.raises(ValueError):
        ours.incr("missing")

    async def main() -> tuple[int, int]:
        try:
            return await ours.aincr("n", -(2**64)), await ours.aincr(
                "new", 2, ignore_key_check=True
            )
        finally:
            await connections.aclose_async()

    assert asyncio.run(main()) == (2**63 - 3, 2)


def test_async_data_structures(both: Any) -> None:
    _, ours = both(PATHS["json"])

    async def main() -> list[Any]:
        try:
            await ours.asadd("s", "a", "b")
            await ours.azadd("z", {"p": 3.0})
            await ours.ahset("h", mapping={"f": [1]})
            members = [m async for m in ours.asscan_iter("s")]
            return [
                await ours.asmembers("s"),
                sorted(members),
                await ours.azscore("z", "p"),
                await ours.ahgetall("h"),
                await ours.azpopmin("z"),
            ]
        finally:
            await connections.aclose_async()

    assert asyncio.run(main()) == [{"a", "b"}, ["a", "b"], 3.0, {"f": [1]}, ("p", 3.0)]


@pytest.fixture
def down_cache(settings: Any) -> Any:
    from tests.servers import free_port

    def make(options: dict[str, Any], **globals_: Any) -> Any:
        url = f"redis://127.0.0.1:{free_port()}/0"
        settings.REDIS_CONNECTIONS = {"down": {"URL": url, "RETRY": 0}}
        settings.CACHES = {"default": {"BACKEND": BACKEND, "LOCATION": "down", "OPTIONS": options}}
        for name, value in globals_.items():
            setattr(settings, name, value)
        return caches["default"]

    return make


def test_log_ignored_exceptions_logs_one_record_as_django_redis(
    down_cache: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cache = down_cache(
        {}, DJANGO_REDIS_IGNORE_EXCEPTIONS=True, DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS=True
    )
    with caplog.at_level(logging.DEBUG):
        assert cache.get("k", "default") == "default"
        assert cache.get_many(["a", "b"]) == {}
    assert [(r.name, r.levelname, r.msg) for r in caplog.records] == [
        ("django_redis.cache", "ERROR", "Exception ignored"),
        ("django_redis.cache", "ERROR", "Exception ignored"),
    ]
    assert all(isinstance(r.exc_info[1], redis.ConnectionError) for r in caplog.records)


def test_the_logger_setting_and_options_over_globals(
    down_cache: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cache = down_cache(
        {"IGNORE_EXCEPTIONS": True, "LOG_IGNORED_EXCEPTIONS": True},
        DJANGO_REDIS_IGNORE_EXCEPTIONS=False,
        DJANGO_REDIS_LOGGER="shop.cache",
    )
    with caplog.at_level(logging.DEBUG):
        assert cache.set("k", 1) is False
    assert [(r.name, r.msg) for r in caplog.records] == [("shop.cache", "Exception ignored")]
    strict = down_cache({"IGNORE_EXCEPTIONS": False}, DJANGO_REDIS_IGNORE_EXCEPTIONS=True)
    with pytest.raises(redis.ConnectionError):
        strict.get("k")


def test_scan_itersize_setting(settings: Any, both: Any) -> None:
    settings.DJANGO_REDIS_SCAN_ITERSIZE = 2
    _, ours = both({})
    assert ours._itersize == 2
    ours.set_many({f"k{i}": i for i in range(5)})
    assert ours.delete_pattern("k*") == 5


def test_a_missing_msgpack_is_a_check_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)  # import msgpack now raises ImportError
    cache_options._shared_codec.cache_clear()
    try:
        assert cache_options.option_problems(PATHS["msgpack"]) == [
            "SERIALIZER 'msgpack' needs the msgpack package, which is not installed: "
            "pip install msgpack."
        ]
    finally:
        cache_options._shared_codec.cache_clear()


def test_manage_py_check_reports_client_class_as_e020(settings: Any, redis_server: Any) -> None:
    settings.REDIS_CONNECTIONS = {"default": {"URL": redis_server.url}}
    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.ShardClient", "TYPO": 1},
        }
    }
    with pytest.raises(SystemCheckError) as caught:
        call_command("check")
    message = str(caught.value)
    assert message.count("redis_conn.E020") == 2
    assert "OPTIONS has django-redis's key 'CLIENT_CLASS'" in message
    assert "OPTIONS has an unknown key 'TYPO'" in message
    assert caches["default"].connection_name == "default"  # the cache was built


def test_django_redis_default_client_class_is_accepted_as_it_is(
    settings: Any, redis_server: Any
) -> None:
    # A django-redis settings file keeps working with only BACKEND and LOCATION changed.
    settings.REDIS_CONNECTIONS = {"default": {"URL": redis_server.url}}
    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": "default",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    call_command("check")  # no SystemCheckError
    caches["default"].set("k", "v")
    assert caches["default"].get("k") == "v"
