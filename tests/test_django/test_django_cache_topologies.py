"""The cache on every kind of connection: unix socket, TLS, Sentinel and Redis Cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.core.cache import caches

import redis_conn
from redis_conn.django.cache import RedisCache
from redis_conn.registry import connections

BACKEND = "redis_conn.django.cache.RedisCache"
KEYS = [f"key{i}" for i in range(40)]  # enough to land on every primary of the cluster


def on(settings: Any, connection: dict[str, Any], **params: Any) -> RedisCache:
    settings.REDIS_CONNECTIONS = {"cache": connection}
    settings.CACHES = {"default": {"BACKEND": BACKEND, "LOCATION": "cache", **params}}
    cache = caches["default"]
    assert isinstance(cache, RedisCache)
    return cache


def exercise(cache: RedisCache) -> None:
    cache.set("n", 1)
    assert cache.incr("n", 2) == 3
    cache.set_many({"a": "x", "b": {"y": 1}})
    assert cache.get_many(["a", "b", "n", "z"]) == {"a": "x", "b": {"y": 1}, "n": 3}
    assert sorted(cache.keys("*")) == ["a", "b", "n"]
    assert cache.clear() is True
    assert cache.get_many(["a", "b", "n"]) == {}


def test_unix_socket(settings: Any, redis_server: Any) -> None:
    exercise(on(settings, {"URL": redis_server.unix_url}))


def test_tls(settings: Any, tls_server: Any) -> None:
    cache = on(settings, {"URL": tls_server.url, "OPTIONS": {"ssl_ca_certs": tls_server.ca_cert}})
    exercise(cache)


def test_sentinel(settings: Any, redis_sentinel: Any) -> None:
    cache = on(
        settings,
        {"SENTINELS": redis_sentinel.sentinels, "SERVICE_NAME": redis_sentinel.service_name},
    )
    exercise(cache)
    cache.set("k", "v")
    with redis_sentinel.current_primary().client() as primary:
        assert primary.exists(":1:k") == 1


@pytest.fixture
def cluster_cache(settings: Any, redis_cluster: Any) -> RedisCache:
    return on(settings, {"URL": redis_cluster.url, "CLUSTER": True}, KEY_PREFIX="shop")


def keys_per_primary(redis_cluster: Any) -> list[int]:
    counts = []
    for node in redis_cluster.primary_nodes:
        with node.client() as client:
            counts.append(client.dbsize())
    return counts


def test_cluster_many_key_calls_span_slots(cluster_cache: RedisCache, redis_cluster: Any) -> None:
    cluster_cache.set_many({key: i for i, key in enumerate(KEYS)})
    assert all(count > 0 for count in keys_per_primary(redis_cluster))
    assert cluster_cache.get_many([*KEYS, "missing"]) == {key: i for i, key in enumerate(KEYS)}
    cluster_cache.delete_many(KEYS[:20])
    assert sorted(cluster_cache.get_many(KEYS)) == sorted(KEYS[20:])
    assert cluster_cache.incr("key39") == 40


def test_cluster_keys_delete_pattern_and_clear_cover_every_primary(
    cluster_cache: RedisCache, redis_cluster: Any
) -> None:
    cluster_cache.set_many({key: "v" for key in KEYS})
    with redis_cluster.client() as raw:
        raw.set("hits", 1)  # not a cache key
        assert sorted(cluster_cache.keys("key*")) == sorted(KEYS)
        assert cluster_cache.delete_pattern("key1*") == 11  # key1, key10 ... key19
        assert len(cluster_cache.keys("*")) == 29
        assert cluster_cache.clear() is True
        assert sum(keys_per_primary(redis_cluster)) == 1
        assert raw.get("hits") == b"1"


def test_cluster_async_get_many_and_clear(cluster_cache: RedisCache, redis_cluster: Any) -> None:
    async def main() -> tuple[Any, ...]:
        try:
            await cluster_cache.aset_many({key: i for i, key in enumerate(KEYS)})
            found = await cluster_cache.aget_many(KEYS)
            incremented = await cluster_cache.aincr("key0", 5)
            cleared = await cluster_cache.aclear()
            return found, incremented, cleared, await cluster_cache.aget_many(KEYS)
        finally:
            await connections.aclose_async()

    found, incremented, cleared, after = asyncio.run(main())
    assert found == {key: i for i, key in enumerate(KEYS)}
    assert (incremented, cleared, after) == (5, True, {})
    assert redis_conn.get_redis("cache") is cluster_cache.client.get_client()
