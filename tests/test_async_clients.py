"""Async clients: one per running event loop, never shared across loops, every kind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from redis_conn import ConnectionRegistry


@pytest.fixture
def registry() -> Iterator[ConnectionRegistry]:
    reg = ConnectionRegistry({"default": {"FAKE": True}})
    yield reg
    reg.close_all()


def test_one_client_per_loop_shared_by_aliases(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": {"URL": redis_server.url}, "s": {"ALIAS": "default"}})

    async def grab() -> tuple[object, bool]:
        r = registry.get_async()
        await r.set("k", "v")
        same = registry.get_async("s") is r and registry.get_async() is r
        await registry.aclose_async()
        return r, same  # the client itself, kept alive: an id() could be reused after GC

    first, second = asyncio.run(grab()), asyncio.run(grab())
    assert first[1] and second[1]
    assert first[0] is not second[0]  # a new loop never gets the old loop's client


def test_loops_in_threads_get_their_own_clients(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": {"URL": redis_server.url}})
    seen: dict[str, object] = {}
    lock = threading.Lock()

    async def work(tag: str) -> None:
        r = registry.get_async()
        await r.incr("n")
        with lock:
            seen[tag] = r
        await asyncio.sleep(0.05)
        assert registry.get_async() is r
        await registry.aclose_async()

    threads = [threading.Thread(target=asyncio.run, args=(work(str(i)),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen.values()}) == 4
    with redis_server.client() as raw:
        assert raw.get("n") == b"4"


def test_outside_a_loop_the_error_says_what_to_use(registry: ConnectionRegistry) -> None:
    with pytest.raises(
        RuntimeError, match=r"needs a running event loop; use get_redis\('default'\)"
    ):
        registry.get_async()


def test_async_kinds(
    registry: ConnectionRegistry,
    redis_server: Any,
    tls_server: Any,
    redis_cluster: Any,
    redis_sentinel: Any,
) -> None:
    registry.configure(
        {
            "tcp": {"URL": redis_server.url},
            "sock": {"URL": redis_server.unix_url},
            "tls": {"URL": tls_server.url, "OPTIONS": {"ssl_ca_certs": tls_server.ca_cert}},
            "cluster": {"URL": redis_cluster.url, "CLUSTER": True},
            "ha": {
                "SENTINELS": redis_sentinel.sentinels,
                "SERVICE_NAME": redis_sentinel.service_name,
            },
            "fake": {"FAKE": True},
        }
    )
    registry.get("fake").set("shared", "sync")

    async def scenario() -> dict[str, Any]:
        results = {}
        for name in ("tcp", "sock", "tls", "cluster", "ha"):
            r = registry.get_async(name)
            await r.set(f"async:{name}", name)
            results[name] = await r.get(f"async:{name}")
        # fake: the async client sees the same in-process server as the sync one
        results["fake"] = await registry.get_async("fake").get("shared")
        await registry.aclose_async()
        return results

    assert asyncio.run(scenario()) == {
        "tcp": b"tcp",
        "sock": b"sock",
        "tls": b"tls",
        "cluster": b"cluster",
        "ha": b"ha",
        "fake": b"sync",
    }
