"""CONTRACT section 6, "nothing is executed twice": a reply lost after the server ran a write.

A proxy in front of a real redis-server forwards a command, lets the server run it, then
swallows the reply and drops the connection. With the default RETRY (3), a write must come back
as an error saying it may or may not have run, and the server must have run it exactly once; a
read-only command is sent again and answers. Sync and asyncio clients, our pipelines,
redis-py's own pipelines, and Redis Cluster (single commands and batches) are covered.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn import (
    ConnectionLostAfterWrite,
    ConnectionRegistry,
    OutcomeUnknown,
    PipelineError,
    TimeoutAfterWrite,
)
from redis_conn.async_pipeline import async_pipeline
from redis_conn.pipeline import pipeline
from redis_conn.registry import connections

try:
    from fault_proxy import FaultProxy
    from servers import ClusterDeployment, RedisServer
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.fault_proxy import FaultProxy
    from tests.servers import ClusterDeployment, RedisServer

# redis-py sends incr() as INCRBY.
LOST_INCR = (
    "Redis connection 'users': the connection was lost (Connection closed by server.) after "
    "INCRBY was sent; it may or may not have run, and it was not sent again."
)


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", redis_server.port)) as fault:
        yield fault


@pytest.fixture
def registry(proxy: FaultProxy) -> Iterator[ConnectionRegistry]:
    # The defaults that matter are untouched: RETRY 3. The asyncio client pooled: MULTIPLEX's
    # lost replies are tests/test_multiplex.py's.
    reg = ConnectionRegistry({"users": {"URL": proxy.url, "MULTIPLEX": False}})
    yield reg
    reg.close_all()


@pytest.fixture
def configure() -> Iterator[Any]:
    """Configure the process-wide registry (what ``pipeline()`` uses) for one test."""
    yield connections.configure
    connections.configure(None)


def server_value(server: RedisServer, key: str) -> Any:
    with server.client() as raw:
        return raw.get(key)


# -- single commands, sync ---------------------------------------------------------------------


def test_a_write_whose_reply_is_lost_is_not_sent_again(
    registry: ConnectionRegistry, proxy: FaultProxy, redis_server: RedisServer
) -> None:
    client = registry.get("users")
    assert client.ping() is True
    proxy.lose_reply_to(b"INCR")
    with pytest.raises(ConnectionLostAfterWrite) as info:
        client.incr("counter")
    assert str(info.value) == LOST_INCR
    assert isinstance(info.value, RedisConnectionError)  # code catching ConnectionError still does
    assert isinstance(info.value, OutcomeUnknown)
    assert (info.value.connection_name, info.value.command) == ("users", "INCRBY")
    assert proxy.replies_lost == 1
    assert server_value(redis_server, "counter") == b"1"  # ran once, not RETRY + 1 times
    assert client.incr("counter") == 2  # the next command reconnects


def test_a_script_whose_reply_is_lost_is_not_sent_again(
    registry: ConnectionRegistry, proxy: FaultProxy, redis_server: RedisServer
) -> None:
    client = registry.get("users")
    client.ping()
    proxy.lose_reply_to(b"EVAL")
    with pytest.raises(ConnectionLostAfterWrite, match="after EVAL was sent; it may or may not"):
        client.eval("return redis.call('INCR', KEYS[1])", 1, "scripted")
    assert server_value(redis_server, "scripted") == b"1"


def test_a_read_whose_reply_is_lost_is_sent_again(
    registry: ConnectionRegistry, proxy: FaultProxy, redis_server: RedisServer
) -> None:
    client = registry.get("users")
    client.set("greeting", "hello")
    proxy.lose_reply_to(b"GET")
    assert client.get("greeting") == b"hello"
    assert proxy.replies_lost == 1
    assert proxy.connections == 2  # the retry reconnected


def test_with_retry_off_a_lost_read_is_a_plain_named_connection_error(
    proxy: FaultProxy,
) -> None:
    registry = ConnectionRegistry({"users": {"URL": proxy.url, "RETRY": 0}})
    client = registry.get("users")
    try:
        client.set("k", "v")
        proxy.lose_reply_to(b"GET")
        with pytest.raises(RedisConnectionError) as info:
            client.get("k")
        assert not isinstance(info.value, OutcomeUnknown)
        assert str(info.value) == "Redis connection 'users': Connection closed by server."
    finally:
        registry.close_all()


def test_a_write_whose_reply_times_out_is_not_sent_again(
    proxy: FaultProxy, redis_server: RedisServer
) -> None:
    registry = ConnectionRegistry({"users": {"URL": proxy.url, "SOCKET_TIMEOUT": 0.2}})
    client = registry.get("users")
    try:
        client.ping()
        proxy.hold_reply_to(b"INCR", 0.6)  # the server ran it; the answer comes too late
        with pytest.raises(TimeoutAfterWrite) as info:
            client.incr("slow")
        assert isinstance(info.value, RedisTimeoutError)
        # redis-py 8 says "socket", redis-py 7 the address.
        assert re.fullmatch(
            r"Redis connection 'users': no reply in time \(Timeout reading from "
            r"(socket|127\.0\.0\.1:\d+)\) after INCRBY was sent; it may or may not have run, "
            r"and it was not sent again\.",
            str(info.value),
        ), str(info.value)
        assert server_value(redis_server, "slow") == b"1"
        assert client.incr("slow") == 2  # a fresh connection, not the late reply
    finally:
        registry.close_all()


def test_a_write_after_a_server_restart_runs_once(killable_server: RedisServer) -> None:
    """Stale pooled sockets are noticed before a write is sent on them (connect is retried)."""
    registry = ConnectionRegistry({"users": {"URL": killable_server.url, "MAX_CONNECTIONS": 2}})
    client = registry.get("users")
    try:
        client.ping()
        killable_server.kill()
        killable_server.restart()
        assert client.incr("after-restart") == 1
        assert client.get("after-restart") == b"1"
    finally:
        registry.close_all()


# -- single commands, asyncio ------------------------------------------------------------------


def test_async_write_whose_reply_is_lost_is_not_sent_again(
    registry: ConnectionRegistry, proxy: FaultProxy, redis_server: RedisServer
) -> None:
    async def scenario() -> None:
        client = registry.get_async("users")
        try:
            await client.ping()
            proxy.lose_reply_to(b"INCR")
            with pytest.raises(ConnectionLostAfterWrite) as info:
                await client.incr("counter")
            assert str(info.value) == LOST_INCR
            assert server_value(redis_server, "counter") == b"1"
            proxy.lose_reply_to(b"GET")
            assert await client.get("counter") == b"1"  # a read is sent again
            assert await client.incr("counter") == 2
        finally:
            await registry.aclose_async()

    asyncio.run(scenario())


@pytest.mark.parametrize("multiplex", [True, False], ids=["multiplex", "pooled"])
def test_async_write_after_a_server_restart_runs_once(
    configure: Any, killable_server: RedisServer, multiplex: bool
) -> None:
    configure({"users": {"URL": killable_server.url, "MULTIPLEX": multiplex}})
    registry = connections

    async def scenario() -> None:
        client = registry.get_async("users")
        try:
            await client.ping()
            killable_server.kill()
            killable_server.restart()
            for _ in range(3):  # let the loop see the closed socket, as a running app's does
                await asyncio.sleep(0)
            assert await client.incr("after-restart") == 1
            async with async_pipeline(name="users") as p:  # the first pipeline after a restart
                counted = p.incr("after-restart")
                await p.execute()
            assert counted.result == 2
        finally:
            await registry.aclose_async()

    asyncio.run(scenario())


# -- pipelines ---------------------------------------------------------------------------------


def test_our_pipeline_batch_whose_replies_are_lost_is_not_sent_again(
    configure: Any, proxy: FaultProxy, redis_server: RedisServer
) -> None:
    configure({"users": {"URL": proxy.url}})
    connections.get("users").ping()
    proxy.lose_reply_to(b"INCR")
    with pipeline(name="users") as p:
        first, second, read = p.incr("a"), p.incr("b"), p.get("a")
        with pytest.raises(PipelineError) as info:
            p.execute()
    for future in (first, second, read):
        with pytest.raises(OutcomeUnknown):
            future.result  # noqa: B018
    assert str(info.value) == (
        "Pipeline failed on 'users': ConnectionLostAfterWrite: Redis connection 'users': the "
        "connection was lost (Connection closed by server.) after a batch of 3 commands was "
        "sent; it may or may not have run, and it was not sent again. 3 commands failed: "
        "'users': INCRBY a, 'users': INCRBY b, 'users': GET a."
    )
    assert (server_value(redis_server, "a"), server_value(redis_server, "b")) == (b"1", b"1")


def test_async_pipeline_batch_whose_replies_are_lost_is_not_sent_again(
    configure: Any, proxy: FaultProxy, redis_server: RedisServer
) -> None:
    configure({"users": {"URL": proxy.url}})

    async def scenario() -> None:
        try:
            await connections.get_async("users").ping()
            proxy.lose_reply_to(b"INCR")
            async with async_pipeline(name="users") as p:
                first = p.incr("a")
                with pytest.raises(PipelineError):
                    await p.execute()
            with pytest.raises(ConnectionLostAfterWrite):
                first.result  # noqa: B018
        finally:
            await connections.aclose_async()

    asyncio.run(scenario())
    assert server_value(redis_server, "a") == b"1"


def test_redis_py_pipeline_whose_replies_are_lost_is_not_sent_again(
    registry: ConnectionRegistry, proxy: FaultProxy, redis_server: RedisServer
) -> None:
    client = registry.get("users")
    client.ping()
    proxy.lose_reply_to(b"INCR", keep=4)  # the first reply (":1\r\n") arrives, then the drop
    pipe = client.pipeline(transaction=False)
    pipe.incr("a").incr("b")
    with pytest.raises(ConnectionLostAfterWrite, match="after a batch of 2 commands was sent"):
        pipe.execute()
    assert (server_value(redis_server, "a"), server_value(redis_server, "b")) == (b"1", b"1")


def test_async_redis_py_pipeline_whose_replies_are_lost_is_not_sent_again(
    registry: ConnectionRegistry, proxy: FaultProxy, redis_server: RedisServer
) -> None:
    async def scenario() -> None:
        client = registry.get_async("users")
        try:
            await client.ping()
            proxy.lose_reply_to(b"INCR")
            pipe = client.pipeline(transaction=True)
            pipe.incr("a").incr("b")
            with pytest.raises(ConnectionLostAfterWrite):
                await pipe.execute()
        finally:
            await registry.aclose_async()

    asyncio.run(scenario())
    assert (server_value(redis_server, "a"), server_value(redis_server, "b")) == (b"1", b"1")


# -- Redis Cluster -----------------------------------------------------------------------------


@pytest.fixture
def proxied_cluster(redis_cluster: ClusterDeployment) -> Iterator[dict[int, FaultProxy]]:
    """A fault proxy in front of every cluster node; clients reach nodes only through them."""
    proxies = {node.port: FaultProxy(("127.0.0.1", node.port)) for node in redis_cluster.nodes}
    try:
        yield proxies
    finally:
        for fault in proxies.values():
            fault.close()


def cluster_registry(redis_cluster: ClusterDeployment, proxies: dict[int, FaultProxy]) -> Any:
    by_port = {port: fault.port for port, fault in proxies.items()}

    def through_proxy(address: tuple[str, int]) -> tuple[str, int]:
        return ("127.0.0.1", by_port.get(address[1], address[1]))

    return ConnectionRegistry(
        {
            "users": {
                "URL": redis_cluster.url,
                "CLUSTER": True,
                "OPTIONS": {"address_remap": through_proxy},
            }
        }
    )


def settled(future: Any) -> Any:
    try:
        return future.result
    except Exception as exc:
        return exc


def node_proxy(client: Any, proxies: dict[int, FaultProxy], key: str) -> FaultProxy:
    """The proxy in front of the node that holds ``key`` (the sync client names nodes by the
    remapped address, the asyncio client by the node's own)."""
    port = client.get_node_from_key(key).port
    by_proxy_port = {fault.port: fault for fault in proxies.values()}
    return by_proxy_port.get(port) or proxies[port]


def test_cluster_write_whose_reply_is_lost_is_not_sent_again(
    redis_cluster: ClusterDeployment, proxied_cluster: dict[int, FaultProxy]
) -> None:
    registry = cluster_registry(redis_cluster, proxied_cluster)
    client = registry.get("users")
    try:
        assert client.set("{c}n", 0) is True
        node_proxy(client, proxied_cluster, "{c}n").lose_reply_to(b"INCR")
        with pytest.raises(ConnectionLostAfterWrite):
            client.incr("{c}n")
        with redis_cluster.client() as raw:
            assert raw.get("{c}n") == b"1"
    finally:
        registry.close_all()


@pytest.mark.parametrize("api", ["redis_conn", "redis-py"])
def test_cluster_batch_whose_replies_are_lost_is_not_sent_again(
    redis_cluster: ClusterDeployment, proxied_cluster: dict[int, FaultProxy], api: str
) -> None:
    registry = cluster_registry(redis_cluster, proxied_cluster)
    client = registry.get("users")
    keys = ["{a}n", "{b}n", "{c}n"]  # three slots, on different primaries
    try:
        for key in keys:
            client.set(key, 0)
        client.set("{a}s", "read me")
        lossy = node_proxy(client, proxied_cluster, "{a}n")
        lossy.lose_reply_to(b"INCR")
        if api == "redis-py":
            pipe = client.pipeline()
            for key in keys:
                pipe.incr(key)
            pipe.get("{a}s")
            replies = pipe.execute(raise_on_error=False)
        else:
            registry.source.apply_to(connections)
            with pipeline(name="users") as p:
                futures = [p.incr(key) for key in keys] + [p.get("{a}s")]
                with pytest.raises(PipelineError):
                    p.execute()
            replies = [settled(future) for future in futures]
        assert lossy.replies_lost == 1
        assert isinstance(replies[0], ConnectionLostAfterWrite)  # "{a}n": may or may not have run
        assert replies[1:3] == [1, 1]  # other nodes unaffected
        assert replies[3] == b"read me"  # a read in the lost batch was sent again
        with redis_cluster.client() as raw:
            assert [raw.get(key) for key in keys] == [b"1", b"1", b"1"]  # each ran exactly once
    finally:
        registry.close_all()
        connections.configure(None)


def test_async_cluster_batch_whose_replies_are_lost_is_not_sent_again(
    redis_cluster: ClusterDeployment, proxied_cluster: dict[int, FaultProxy]
) -> None:
    registry = cluster_registry(redis_cluster, proxied_cluster)
    keys = ["{a}n", "{b}n", "{c}n"]

    async def scenario() -> list[Any]:
        client = registry.get_async("users")
        try:
            # Map the slots first: redis-py's asyncio cluster does not remap the address of a
            # node it learns from a MOVED reply, which would bypass the proxies.
            await client.initialize()
            for key in keys:
                await client.set(key, 0)
            lossy = node_proxy(client, proxied_cluster, "{a}n")
            lossy.lose_reply_to(b"INCR")
            pipe = client.pipeline()
            for key in keys:
                pipe.incr(key)
            with pytest.raises(ConnectionLostAfterWrite):
                await pipe.execute()  # raise_on_error=True: redis-py would retry the batch
            assert lossy.replies_lost == 1
            return [await client.get(key) for key in keys]
        finally:
            await registry.aclose_async()

    values = asyncio.run(scenario())
    assert values == [b"1", b"1", b"1"]


def test_redis_py_own_retry_would_run_the_write_twice(
    proxy: FaultProxy, redis_server: RedisServer
) -> None:
    """The fault is real: plain redis-py with a retry on ConnectionError runs INCR twice."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    raw = redis.Redis(
        port=proxy.port, retry=Retry(NoBackoff(), 3, supported_errors=(RedisConnectionError,))
    )
    try:
        raw.ping()
        proxy.lose_reply_to(b"INCR")
        assert raw.incr("twice") == 2
        assert server_value(redis_server, "twice") == b"2"
    finally:
        raw.close()
