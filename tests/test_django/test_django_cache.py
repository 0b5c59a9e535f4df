"""redis_conn's Django cache backend on a real server: one pool, the storage format, the
django-redis extras, OPTIONS, IGNORE_EXCEPTIONS, and use without the redis_conn app."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.core.cache.backends.base import InvalidCacheBackendError

import redis_conn
from redis_conn.django.cache import RedisCache, get_redis_connection

BACKEND = "redis_conn.django.cache.RedisCache"
ConfigureCache = Callable[..., RedisCache]


@pytest.fixture
def configure(settings: Any, redis_server: Any) -> ConfigureCache:
    """``configure(**cache_params)``: caches["default"] on connection "cache" (an alias of
    "default", server A); extra aliases with ``more={alias: params}``."""

    def make(
        connection: dict[str, Any] | None = None,
        more: dict[str, dict[str, Any]] | None = None,
        **params: Any,
    ) -> RedisCache:
        settings.REDIS_CONNECTIONS = {
            "default": connection or {"URL": redis_server.url},
            "cache": {"ALIAS": "default"},
        }
        settings.CACHES = {
            "default": {"BACKEND": BACKEND, "LOCATION": "cache", **params},
            **{alias: {"BACKEND": BACKEND, **extra} for alias, extra in (more or {}).items()},
        }
        cache = caches["default"]
        assert isinstance(cache, RedisCache)
        return cache

    return make


@pytest.fixture
def cache(configure: ConfigureCache) -> RedisCache:
    return configure(KEY_PREFIX="shop")


@pytest.fixture
def raw(redis_server: Any) -> Any:
    client = redis_server.client()
    yield client
    client.close()


def test_the_cache_uses_the_connections_own_client_and_pool(cache: RedisCache, raw: Any) -> None:
    earlier = {c["id"] for c in raw.client_list()}  # other tests' idle connections, and raw's
    client = redis_conn.get_redis("cache")
    assert cache.client.get_client(write=True) is client  # django-redis's way to reach it
    assert cache.client.get_client(write=False) is client
    assert get_redis_connection("default") is client
    assert client is redis_conn.get_redis("default")  # "cache" is an alias: the same pool
    cache.set("k", "v")
    client.incr("hits")  # raw use of the same connection
    assert cache.get("k") == "v"
    usage = client.connection_pool.usage()
    assert (usage.created, usage.in_use) == (1, 0)
    assert len([c for c in raw.client_list() if c["id"] not in earlier]) == 1


def test_values_are_stored_as_djangos_redis_cache_stores_them(cache: RedisCache, raw: Any) -> None:
    cache.set("count", 42)
    cache.set("flag", True)
    cache.set("doc", {"a": [1, 2]})
    assert raw.get("shop:1:count") == b"42"  # raw, so INCR works on it
    assert raw.get("shop:1:flag") == pickle.dumps(True, pickle.HIGHEST_PROTOCOL)
    assert raw.get("shop:1:doc") == pickle.dumps({"a": [1, 2]}, pickle.HIGHEST_PROTOCOL)
    assert cache.incr("count", 8) == 50
    assert raw.get("shop:1:count") == b"50"
    assert 299 <= raw.ttl("shop:1:doc") <= 300  # TIMEOUT's default


def test_set_nx_and_xx_say_whether_they_stored(cache: RedisCache) -> None:
    assert cache.set("k", 1, nx=True) is True
    assert cache.set("k", 2, nx=True) is False
    assert cache.get("k") == 1
    assert cache.set("missing", 3, xx=True) is False
    assert cache.get("missing") is None
    assert cache.set("k", 4, xx=True) is True
    assert cache.get("k") == 4
    assert cache.set("k", 5, timeout=0) is False  # a timeout of 0 stores nothing
    assert cache.get("k") is None


def test_ttl_expire_and_persist(cache: RedisCache) -> None:
    cache.set("k", "v", timeout=100)
    ttl = cache.ttl("k")
    assert ttl is not None and 99 <= ttl <= 100
    assert cache.persist("k") is True
    assert cache.ttl("k") is None  # never expires
    assert cache.persist("k") is False  # it had no timeout
    assert cache.expire("k", 50) is True
    ttl = cache.ttl("k")
    assert ttl is not None and 49 <= ttl <= 50
    assert cache.ttl("missing") == 0
    assert cache.expire("missing", 50) is False
    assert cache.touch("k", None) is True  # no timeout, and it exists
    assert cache.touch("k", None) is True  # still exists, though PERSIST now says 0
    assert cache.ttl("k") is None


def test_keys_iter_keys_and_delete_pattern(cache: RedisCache, raw: Any) -> None:
    cache.set_many({"user:1": "ann", "user:2": "bob", "other": 1})
    cache.set("user:3", "old", version=2)
    raw.set("user:9", "not the cache's")
    assert sorted(cache.keys("user:*")) == ["user:1", "user:2"]
    assert sorted(cache.iter_keys("user:*", itersize=1)) == ["user:1", "user:2"]
    assert cache.keys("user:*", version=2) == ["user:3"]
    assert cache.delete_pattern("user:*") == 2
    assert cache.get_many(["user:1", "user:2", "other"]) == {"other": 1}
    assert cache.get("user:3", version=2) == "old"
    assert raw.get("user:9") == b"not the cache's"


def test_patterns_escape_the_key_prefix(configure: ConfigureCache, raw: Any) -> None:
    cache = configure(KEY_PREFIX="a*")
    cache.set("k", 1)
    raw.set("ab:1:k", "another prefix that a* would match as a glob")
    assert cache.keys("*") == ["k"]
    assert cache.clear() is True
    assert sorted(raw.keys()) == [b"ab:1:k"]


def test_clear_deletes_this_caches_keys_only(configure: ConfigureCache, raw: Any) -> None:
    cache = configure(KEY_PREFIX="shop", more={"other": {"LOCATION": "cache", "KEY_PREFIX": "x"}})
    cache.set_many({"a": 1, "b": 2})
    cache.set("c", 3, version=7)
    caches["other"].set("a", "kept")
    raw.set("hits", 10)  # not a cache key: what FLUSHDB would have deleted
    assert cache.clear() is True
    assert cache.clear() is False  # nothing left to delete
    assert sorted(raw.keys()) == [b"hits", b"x:1:a"]


def test_clear_without_a_prefix_keeps_other_keys(configure: ConfigureCache, raw: Any) -> None:
    cache = configure()
    cache.set("a", 1)
    raw.set("hits", 10)
    assert cache.clear() is True
    assert raw.keys() == [b"hits"]


def test_lock_is_on_the_cache_key(cache: RedisCache, raw: Any) -> None:
    with cache.lock("job", timeout=5):
        assert raw.exists("shop:1:job") == 1
        assert cache.lock("job", blocking=False).acquire() is False
    assert raw.exists("shop:1:job") == 0


def test_incr_of_a_missing_key_names_the_key_and_connection(cache: RedisCache) -> None:
    with pytest.raises(ValueError) as caught:
        cache.incr("nope")
    assert str(caught.value) == "Key 'nope' not found in the cache on Redis connection 'cache'."
    cache.set("pickled", "text")
    with pytest.raises(redis.ResponseError):
        cache.incr("pickled")


def test_a_decoding_connection_still_gets_bytes_for_values(
    configure: ConfigureCache, redis_server: Any
) -> None:
    cache = configure(connection={"URL": redis_server.url, "OPTIONS": {"decode_responses": True}})
    cache.set_many({"a": {"x": 1}, "b": "text", "n": 5})
    assert cache.get("a") == {"x": 1}
    assert cache.get_many(["a", "b", "n", "z"]) == {"a": {"x": 1}, "b": "text", "n": 5}
    assert cache.keys("*") and sorted(cache.keys("*")) == ["a", "b", "n"]
    assert redis_conn.get_redis("default").get(":1:n") == "5"  # raw use still decodes


def test_json_serializer_and_zlib_compressor(configure: ConfigureCache, raw: Any) -> None:
    cache = configure(OPTIONS={"SERIALIZER": "json", "COMPRESSOR": "zlib", "COMPRESS_MIN_LEN": 64})
    big = {"text": "x" * 500}
    cache.set_many({"small": ["a", 1], "big": big, "n": 3})
    assert raw.get(":1:small") == b'["a",1]'
    assert zlib.decompress(raw.get(":1:big")) == json.dumps(big, separators=(",", ":")).encode()
    assert raw.get(":1:n") == b"3"
    assert cache.get_many(["small", "big", "n"]) == {"small": ["a", 1], "big": big, "n": 3}


def test_gzip_set_members_are_found_in_a_later_second(
    configure: ConfigureCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compressed set member is the same bytes whenever it is written (gzip's header
    carries a time unless told not to): django-redis's test_smove failed across a second."""
    cache = configure(OPTIONS={"COMPRESSOR": "gzip", "COMPRESS_MIN_LEN": 0})
    monkeypatch.setattr(time, "time", lambda: 1_000_000_000.0)
    cache.sadd("set", "member")
    monkeypatch.setattr(time, "time", lambda: 1_000_000_007.0)
    assert cache.sismember("set", "member") is True
    assert cache.smove("set", "other", "member") is True


def test_a_serializer_by_dotted_path(configure: ConfigureCache, raw: Any) -> None:
    cache = configure(OPTIONS={"SERIALIZER": "redis_conn.codecs.JSONSerializer"})
    cache.set("k", {"a": 1})
    assert raw.get(":1:k") == b'{"a":1}'
    assert cache.get("k") == {"a": 1}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"OPTIONS": {"CLIENT_CLASS": "django_redis.client.HerdClient"}},
            "redis_conn's RedisCache on connection 'cache': OPTIONS has django-redis's key "
            "'CLIENT_CLASS': redis_conn's cache has one client, django-redis's DefaultClient "
            "behaviour on the connection LOCATION names (herd, sharding and Sentinel clients "
            "are not provided; Sentinel is a connection setting); remove CLIENT_CLASS, or name "
            "django_redis.client.DefaultClient.",
        ),
        (
            {"OPTIONS": {"MAX_ENTRIES": 10}},
            "redis_conn's RedisCache on connection 'cache': OPTIONS has an unknown key "
            "'MAX_ENTRIES'; the known keys are SERIALIZER, COMPRESSOR, COMPRESS_MIN_LEN, "
            "PICKLE_VERSION, IGNORE_EXCEPTIONS, LOG_IGNORED_EXCEPTIONS.",
        ),
        (
            {"OPTIONS": {"SERIALIZER": "yaml"}},
            "redis_conn's RedisCache on connection 'cache': SERIALIZER 'yaml' is not one of "
            "'pickle', 'json', 'msgpack', nor a dotted path.",
        ),
        (
            {"OPTIONS": {"COMPRESSOR": "nope.Compressor"}},
            "redis_conn's RedisCache on connection 'cache': COMPRESSOR 'nope.Compressor' "
            "cannot be imported: No module named 'nope'.",
        ),
        (
            {"OPTIONS": {"COMPRESS_MIN_LEN": "1k", "IGNORE_EXCEPTIONS": "yes"}},
            "redis_conn's RedisCache on connection 'cache': OPTIONS['COMPRESS_MIN_LEN'] must "
            "be a whole number >= 0, not '1k'. OPTIONS['IGNORE_EXCEPTIONS'] must be True or "
            "False, not 'yes'.",
        ),
    ],
)
def test_bad_options_fail_when_the_cache_is_first_used(
    configure: ConfigureCache, params: dict[str, Any], message: str
) -> None:
    # Made without an error: Django makes every cache inside its own system checks, where
    # the problem must show as redis_conn.E020 rather than as a traceback.
    cache = configure(**params)
    for use in (lambda: cache.get("k"), lambda: cache.set("k", 1), lambda: cache.delete("k")):
        with pytest.raises(InvalidCacheBackendError) as caught:
            use()
        assert str(caught.value) == message


def test_location_must_be_a_connection_name(configure: ConfigureCache) -> None:
    cache = configure(LOCATION=["redis://127.0.0.1:6379/0"])
    with pytest.raises(InvalidCacheBackendError) as caught:
        cache.has_key("k")
    assert str(caught.value) == (
        "redis_conn's RedisCache takes the name of one connection of REDIS_CONNECTIONS as "
        "LOCATION, not ['redis://127.0.0.1:6379/0']."
    )


def test_an_unknown_location_fails_on_first_use(configure: ConfigureCache) -> None:
    cache = configure(LOCATION="nope")
    with pytest.raises(redis_conn.ConnectionNotFound) as caught:
        cache.get("k")
    assert str(caught.value) == (
        "Redis connection 'nope' is not configured. Configured connections: 'cache', 'default'."
    )


def test_get_redis_connection_refuses_another_backend(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with pytest.raises(ValueError) as caught:
        get_redis_connection()
    assert str(caught.value) == (
        "CACHES['default'] is django.core.cache.backends.locmem.LocMemCache, not "
        "redis_conn.django.cache.RedisCache, so it has no Redis connection to return."
    )


def test_a_fake_connection_serves_the_whole_api(configure: ConfigureCache) -> None:
    cache = configure(connection={"FAKE": True})
    cache.set("n", 1)
    assert cache.incr("n", 5) == 6  # without Lua: WATCH/MULTI on fakeredis
    with pytest.raises(ValueError):
        cache.incr("missing")
    cache.set_many({"a": 1, "b": 2})
    assert cache.get_many(["a", "b", "n"]) == {"a": 1, "b": 2, "n": 6}
    assert sorted(cache.keys("*")) == ["a", "b", "n"]
    assert cache.clear() is True
    assert cache.get("a") is None


def test_ignore_exceptions_reads_a_down_server_as_a_miss(
    configure: ConfigureCache, killable_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cache = configure(
        connection={"URL": killable_server.url, "RETRY": 0, "SOCKET_CONNECT_TIMEOUT": 0.5},
        OPTIONS={"IGNORE_EXCEPTIONS": True},
    )
    cache.set("k", "v")
    killable_server.kill()
    with caplog.at_level(logging.WARNING, logger="redis_conn.cache"):
        assert cache.get("k", "default") == "default"
        assert cache.set("k", "w") is False
        assert cache.add("k", "w") is False
        assert cache.get_many(["k", "j"]) == {}
        assert cache.set_many({"k": 1, "j": 2}) == ["k", "j"]
        assert cache.has_key("k") is False
        assert cache.delete("k") is False
        assert cache.ttl("k") == 0
        with pytest.raises(ValueError):  # a miss, as for a missing key
            cache.incr("k")
    assert len(caplog.records) == 9
    first = caplog.records[0].getMessage()
    assert first.startswith(
        "Cache on Redis connection 'cache': GET ':1:k' failed, treated as a miss "
        "(IGNORE_EXCEPTIONS): ConnectionError: Redis connection 'default': "
    )


def test_every_ignored_failure_names_its_command_and_prefixed_key(
    configure: ConfigureCache, killable_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Each method under omit_exception: its miss value, and a WARNING naming the command and
    the Redis key (version and prefix applied; iterators of keys, spent, still named)."""
    import asyncio

    cache = configure(
        connection={"URL": killable_server.url, "RETRY": 0, "SOCKET_CONNECT_TIMEOUT": 0.5},
        OPTIONS={"IGNORE_EXCEPTIONS": True},
    )
    killable_server.kill()
    results = [
        cache.get("k", "d", version=2),
        cache.set("k", 1),
        cache.touch("k"),
        cache.delete("k", prefix="p"),
        cache.has_key("k"),
        cache.get_many(iter(["a", "b"])),
        cache.set_many({"a": 1, "b": 2}, version=3),
        cache.delete_many(iter(["a", "b"])),
        cache.ttl("k"),
        cache.pttl("k"),
        cache.expire("k", 5),
        cache.pexpire("k", 5),
        cache.expire_at("k", 5),
        cache.pexpire_at("k", 5),
        cache.persist("k"),
    ]
    assert results == ["d", False, False, False, False, {}, ["a", "b"], 0, 0, 0] + [False] * 5

    async def main() -> list[Any]:
        return [
            await cache.aget("k", "d"),
            await cache.aset("k", 1),
            await cache.atouch("k", None),
            await cache.adelete("k", version=4),
            await cache.ahas_key("k"),
            await cache.aget_many(iter(["a", "b"])),
            await cache.aset_many({"a": 1}),
            await cache.adelete_many(iter(["a", "b"])),
        ]

    with caplog.at_level(logging.WARNING, logger="redis_conn.cache"):
        assert asyncio.run(main()) == ["d", False, False, False, False, {}, ["a"], 0]
    with caplog.at_level(logging.WARNING, logger="redis_conn.cache"):
        caplog.clear()
        cache.get("k", version=2)
        cache.delete("k", prefix="p")
        cache.get_many(iter(["a", "b"]))
        cache.set_many({"a": 1, "b": 2}, version=3)
        cache.delete_many(iter(["a", "b"]))
        cache.ttl("k")
        cache.pexpire_at("k", 5)
        asyncio.run(main())
    assert [r.getMessage().split(" failed")[0].split(": ", 1)[1] for r in caplog.records] == [
        "GET ':2:k'",
        "DEL 'p:1:k'",
        "MGET ':1:a'",
        "SET ':3:a'",
        "DEL ':1:a'",
        "TTL ':1:k'",
        "PEXPIREAT ':1:k'",
        "GET ':1:k'",
        "SET ':1:k'",
        "EXPIRE ':1:k'",
        "DEL ':4:k'",
        "EXISTS ':1:k'",
        "MGET ':1:a'",
        "SET ':1:a'",
        "DEL ':1:a'",
    ]


def test_without_ignore_exceptions_a_down_server_raises(
    configure: ConfigureCache, killable_server: Any
) -> None:
    cache = configure(
        connection={"URL": killable_server.url, "RETRY": 0, "SOCKET_CONNECT_TIMEOUT": 0.5}
    )
    killable_server.kill()
    with pytest.raises(redis.ConnectionError) as caught:
        cache.get("k")
    assert str(caught.value).startswith("Redis connection 'default': ")


def test_works_without_the_redis_conn_app(redis_server: Any) -> None:
    script = """
import os
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=[],
    REDIS_CONNECTIONS={"cache": {"URL": os.environ["CACHE_URL"]}},
    CACHES={"default": {"BACKEND": "redis_conn.django.cache.RedisCache", "LOCATION": "cache"}},
)
django.setup()
from django.core.cache import cache
import redis_conn
cache.set("k", {"v": 1})
print(cache.get("k"), cache.client.get_client() is redis_conn.get_redis("cache"))
"""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["CACHE_URL"] = redis_server.url
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert (run.stdout, run.stderr) == ("{'v': 1} True\n", "")
    with redis_server.client() as raw:
        assert raw.get(":1:k") == pickle.dumps({"v": 1}, pickle.HIGHEST_PROTOCOL)


def test_redis_pools_shows_the_caches_on_each_connection(settings: Any, redis_server: Any) -> None:
    import io

    from django.core.management import call_command

    settings.REDIS_CONNECTIONS = {
        "default": {"URL": redis_server.url},
        "cache": {"ALIAS": "default"},
    }
    settings.CACHES = {
        "default": {"BACKEND": BACKEND, "LOCATION": "cache"},
        "sessions": {"BACKEND": BACKEND, "LOCATION": "cache"},
        "pages": {"BACKEND": BACKEND},
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    out = io.StringIO()
    call_command("redis_pools", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert {c["name"]: c["caches"] for c in report["connections"]} == {
        "default": ["pages"],
        "cache": ["default", "sessions"],
    }
    out = io.StringIO()
    call_command("redis_pools", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[-3:] == [
        "default: used by CACHES 'pages'",
        "cache: used by CACHES 'default', 'sessions'",
        "overall: ok  (POOL = in use/created/max)",
    ]


def test_fake_connections_fake_the_cache_too(cache: RedisCache, raw: Any) -> None:
    from redis_conn.testing import fake_connections

    with fake_connections() as fake:
        cache.set("k", {"v": 1})
        assert cache.get("k") == {"v": 1}
        assert cache.add("n", 1) is True
        assert cache.incr("n") == 2  # the FAKE path of incr
        assert fake.get("cache").exists("shop:1:k") == 1
    assert raw.keys() == []  # the real server saw nothing
    assert cache.get("k") is None  # back on the real server
