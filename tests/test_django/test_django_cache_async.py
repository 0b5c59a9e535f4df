"""The cache's async methods: native on ``get_async_redis(LOCATION)``, never sync_to_async."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from django.core.cache import caches

import redis_conn
from redis_conn.django.cache import RedisCache
from redis_conn.registry import connections

T = TypeVar("T")
BACKEND = "redis_conn.django.cache.RedisCache"


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` on a new event loop and close that loop's asyncio clients after it."""

    async def closing() -> T:
        try:
            return await main()
        finally:
            await connections.aclose_async()

    return asyncio.run(closing())


@pytest.fixture
def cache(settings: Any, redis_server: Any) -> RedisCache:
    settings.REDIS_CONNECTIONS = {"default": {"URL": redis_server.url}}
    settings.CACHES = {"default": {"BACKEND": BACKEND, "KEY_PREFIX": "p"}}
    cache = caches["default"]
    assert isinstance(cache, RedisCache)
    return cache


def test_the_async_methods_django_gives_run_on_the_async_client_too(cache: RedisCache) -> None:
    # aget_or_set, adecr and adecr_version are BaseCache's, built on our native async methods.
    async def main() -> list[Any]:
        results = [
            await cache.aget_or_set("n", lambda: 5),
            await cache.aget_or_set("n", 9),
            await cache.adecr("n", 2),
        ]
        await cache.aset("v", "x", timeout=100)
        results += [
            await cache.adecr_version("v"),  # version 1 -> 0
            await cache.aget("v", version=0),
            await cache.ahas_key("v"),
        ]
        return results

    assert run(main) == [5, 5, 3, 0, "x", False]
    assert redis_conn.connections.created_clients() == {}  # no sync client was even made
    # The TTL moved with the value (Django's default would have reset it to TIMEOUT, 300).
    assert 0 < cache.ttl("v", version=0) <= 100


def test_aincr_version_of_a_missing_key_says_what_incr_version_says(cache: RedisCache) -> None:
    with pytest.raises(ValueError) as sync_error:
        cache.incr_version("missing")

    async def main() -> int:
        return await cache.aincr_version("missing")

    with pytest.raises(ValueError) as async_error:
        run(main)
    assert str(async_error.value) == str(sync_error.value)
    assert (
        str(sync_error.value)
        == "Key 'missing' not found in the cache on Redis connection 'default'."
    )


def test_async_methods_use_the_async_client_and_never_the_sync_pool(cache: RedisCache) -> None:
    async def main() -> tuple[Any, ...]:
        client = redis_conn.get_async_redis("default")
        await cache.aset("k", {"v": 1})
        value = await cache.aget("k")
        mux = client.multiplexer  # MULTIPLEX, the default for asyncio clients
        return value, (mux.connected, mux.reconnects, client.connection_pool.usage().created)

    value, usage = run(main)
    assert value == {"v": 1}
    assert usage == (True, 0, 0)  # one shared connection served both commands, no pooled one
    assert redis_conn.connections.created_clients() == {}  # no sync client was even made
    assert cache.get("k") == {"v": 1}  # the same storage as the sync methods


def test_async_methods_behave_as_the_sync_ones(cache: RedisCache) -> None:
    async def main() -> list[Any]:
        return [
            await cache.aadd("a", 1),
            await cache.aadd("a", 2),
            await cache.aset_many({"b": "bee", "c": [3]}),
            await cache.aget_many(["a", "b", "c", "z"]),
            await cache.aincr("a", 10),
            await cache.adecr("a", 4),
            await cache.ahas_key("b"),
            await cache.adelete("b"),
            await cache.ahas_key("b"),
            await cache.atouch("c", 100),
            await cache.atouch("z", 100),
            await cache.aget_or_set("d", lambda: "made"),
            await cache.aget_or_set("d", "not used"),
            await cache.aincr_version("d"),
            await cache.aget("d", version=2),
            await cache.adecr_version("d", version=2),
            await cache.aget("d"),
            await cache.aset("e", "x", timeout=0),
            await cache.aget("e", "gone"),
            await cache.aset("e", "x", nx=True),
            await cache.aset("e", "y", nx=True),
            await cache.adelete_many(["a", "c"]),
            await cache.aget_many(["a", "c", "d", "e"]),
            await cache.aclear(),
            await cache.aget_many(["d", "e"]),
            await cache.aclose(),
        ]

    assert run(main) == [
        True,
        False,
        [],
        {"a": 1, "b": "bee", "c": [3]},
        11,
        7,
        True,
        True,
        False,
        True,
        False,
        "made",
        "made",
        2,
        "made",
        1,
        "made",
        False,
        "gone",
        True,
        False,
        2,  # adelete_many: how many were deleted, as delete_many (django-redis's contract)
        {"d": "made", "e": "x"},
        True,
        {},
        None,
    ]
    assert cache.ttl("c") == 0  # deleted by adelete_many


def test_aincr_of_a_missing_key_raises_value_error(cache: RedisCache) -> None:
    with pytest.raises(ValueError) as caught:
        run(lambda: cache.aincr("nope"))
    assert str(caught.value) == "Key 'nope' not found in the cache on Redis connection 'default'."


def test_async_ignore_exceptions(
    settings: Any, killable_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": killable_server.url, "RETRY": 0, "SOCKET_CONNECT_TIMEOUT": 0.5}
    }
    settings.CACHES = {"default": {"BACKEND": BACKEND, "OPTIONS": {"IGNORE_EXCEPTIONS": True}}}
    cache = caches["default"]
    killable_server.kill()

    async def main() -> list[Any]:
        return [
            await cache.aget("k", "default"),
            await cache.aset("k", 1),
            await cache.aget_many(["k"]),
            await cache.ahas_key("k"),
        ]

    with caplog.at_level(logging.WARNING, logger="redis_conn.cache"):
        assert run(main) == ["default", False, {}, False]
    assert [r.getMessage().split(" failed")[0] for r in caplog.records] == [
        "Cache on Redis connection 'default': GET ':1:k'",
        "Cache on Redis connection 'default': SET ':1:k'",
        "Cache on Redis connection 'default': MGET ':1:k'",
        "Cache on Redis connection 'default': EXISTS ':1:k'",
    ]


def test_a_lazy_queryset_like_value_is_pickled_off_the_event_loop(cache: RedisCache) -> None:
    from django.core.exceptions import SynchronousOnlyOperation
    from django.utils.asyncio import async_unsafe

    class TouchesTheDatabase:
        """Pickling runs an async-unsafe call, as an unevaluated QuerySet's does."""

        @async_unsafe
        def __reduce__(self) -> Any:
            return (dict, ((("pickled", "in a thread"),),))

    with pytest.raises(SynchronousOnlyOperation):  # what the value does on the event loop

        async def pickle_on_the_loop() -> None:
            TouchesTheDatabase().__reduce__()

        run(pickle_on_the_loop)

    async def main() -> Any:
        await cache.aset("qs", TouchesTheDatabase())
        return await cache.aget("qs")

    assert run(main) == {"pickled": "in a thread"}
