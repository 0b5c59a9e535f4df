"""Build the redis.asyncio client for one spec, for the running event loop.

The pools are :mod:`redis_conn.async_pools` (FIFO, safe to cancel, never poisoned).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import urlsplit

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.asyncio.sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn.async_cluster_nodes import NodeGates, gate_nodes, prepaid
from redis_conn.async_pools import (
    AsyncGuardedConnectionPool,
    AsyncGuardedPool,
    AsyncGuardedSentinelConnectionPool,
)
from redis_conn.cached_reads import CachedAsyncRedis, CachedMultiplexedRedis
from redis_conn.client_cache import ClientCache
from redis_conn.clients import connection_kwargs, pool_kwargs, replica_reads, sentinel_kwargs
from redis_conn.cluster import (
    after_write_rule,
    cluster_connection_class,
    unreadable_result,
)
from redis_conn.config import ConnectionSpec
from redis_conn.exceptions import PoolExhausted
from redis_conn.guarded import async_connection_class, name_error
from redis_conn.internals import cluster_nodes, cluster_slot
from redis_conn.multiplex_client import multiplexed_client
from redis_conn.multiplex_cluster import ClusterMultiplexing
from redis_conn.multiplex_cluster_batch import SharedClusterBatches
from redis_conn.named_clients import AsyncNamedRedis
from redis_conn.read_only import batch_label, command_name
from redis_conn.retry import AsyncRetry

AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


class AsyncExactlyOnceClusterPipeline(redis.asyncio.cluster.ClusterPipeline):
    """redis-py's asyncio cluster pipeline, minus its batch retry.

    With ``raise_on_error=True`` redis-py re-sends the whole batch when a command failed with a
    connection error, which runs a write twice when only its reply was lost. Without it,
    redis-py keeps each command's error as its result and re-sends only what the server refused
    (MOVED, ASK, TRYAGAIN). So this always asks for the latter and raises the first error itself.
    A failure inside the client once the batch was written is CONTRACT section 13's
    ``ReplyNotUnderstood``, for the whole call or for the commands it hit
    (:func:`~redis_conn.cluster.after_write_rule`).
    """

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # The names, to say which command a failure hit (redis-py's queue is its own business).
        self.__dict__.setdefault("_redis_conn_names", []).append(command_name(args))
        return super().execute_command(*args, **kwargs)

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        names: list[str] = self.__dict__.pop("_redis_conn_names", [])
        client = self.cluster_client
        if isinstance(client, AsyncNamedRedisCluster):
            client.gate_nodes()
        connection_name = getattr(client, "connection_name", "")
        with after_write_rule(connection_name, batch_label("batch", len(names))) as tally:
            results: list[Any] = await super().execute(
                raise_on_error=False, allow_redirections=allow_redirections
            )
        if tally.writes:
            results = [
                unreadable_result(connection_name, name, result)
                for name, result in zip(names, results, strict=False)
            ] + results[len(names) :]
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results


class AsyncClusterTransaction(redis.asyncio.cluster.ClusterPipeline):
    """redis-py's asyncio cluster transaction, under CONTRACT section 13's rule
    (:func:`~redis_conn.cluster.after_write_rule`).

    redis-py takes its connection without awaiting, so with BLOCKING the permit of the node
    that serves its first key is waited for beforehand
    (:func:`~redis_conn.async_cluster_nodes.prepaid`)."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self.__dict__.setdefault("_redis_conn_commands", []).append(args)
        return super().execute_command(*args, **kwargs)

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        client = self.cluster_client
        commands: list[tuple[Any, ...]] = self.__dict__.pop("_redis_conn_commands", [])
        label = batch_label("transaction", len(self))
        async with _paid_for(client, commands):
            with after_write_rule(getattr(client, "connection_name", ""), label):
                results: list[Any] = await super().execute(
                    raise_on_error=raise_on_error, allow_redirections=allow_redirections
                )
        return results

    # redis-py types these as the commands of the same names, not as its pipeline's methods.
    async def watch(self, *names: Any) -> Any:  # type: ignore[override]
        async with _paid_for(self.cluster_client, [("WATCH", *names)]):
            return await super().watch(*names)  # type: ignore[no-untyped-call, unused-ignore]

    async def reset(self) -> None:  # type: ignore[override]
        self.__dict__.pop("_redis_conn_commands", None)
        await super().reset()  # type: ignore[no-untyped-call, unused-ignore]


@asynccontextmanager
async def _paid_for(client: Any, commands: list[tuple[Any, ...]]) -> AsyncIterator[None]:
    """A permit of the node a transaction will take its connection from (that of its first
    key), waited for now; without a key, or before the slot map is known, none."""
    gates: NodeGates | None = getattr(client, "node_gates", None)
    node = None
    if gates is not None and commands:
        await client.initialize()
        for args in commands:
            try:
                slot = await cluster_slot(client, args)
            except Exception:  # no key, an unknown command: redis-py says so itself
                continue
            node = client.nodes_manager.get_node_from_slot(slot, False)
            break
    if node is None or gates is None:
        yield
        return
    gate_nodes((node,), gates)
    async with prepaid(gates, node):
        yield


class AsyncNamedRedisCluster(redis.asyncio.cluster.RedisCluster):
    """redis-py's async cluster has no pool class to plug in: its nodes are made gated nodes
    (:mod:`redis_conn.async_cluster_nodes`: BLOCKING and POOL_TIMEOUT per node, a lost reply
    never sent again), and a full node's error is named here.

    Its pipelines send each command once (:class:`AsyncExactlyOnceClusterPipeline`). Its
    commands follow CONTRACT section 13 (:func:`~redis_conn.cluster.after_write_rule`).
    ``connection_name`` and ``node_gates`` are set by the client builder, which also gives the
    nodes connections that carry the name.
    """

    connection_name = ""
    node_gates: NodeGates | None = None

    async def initialize(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().initialize(*args, **kwargs)
        finally:
            self.gate_nodes()

    def gate_nodes(self) -> None:
        """Every node redis-py knows, gated (it makes new ones as the topology changes)."""
        if self.node_gates is not None:
            gate_nodes(cluster_nodes(self), self.node_gates)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> redis.asyncio.cluster.ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction=transaction, shard_hint=shard_hint)
        if transaction:
            return AsyncClusterTransaction(self, transaction)  # type: ignore[abstract]
        return AsyncExactlyOnceClusterPipeline(self, transaction)  # type: ignore[abstract]

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self.gate_nodes()  # one a MOVED reply made since the last refresh, say
        try:
            with after_write_rule(self.connection_name, command_name(args)):
                return await super().execute_command(*args, **kwargs)
        except MaxConnectionsError as exc:
            if isinstance(exc, PoolExhausted):
                raise
            limit = int(self.connection_kwargs.get("max_connections", 0))
            raise PoolExhausted(self.connection_name, limit) from exc
        except (RedisConnectionError, RedisTimeoutError, RedisClusterException) as exc:
            name_error(exc, self.connection_name)
            raise


# redis-py's typing of its cluster classes disagrees with itself (command_info, reset): the
# combinations below inherit that, not make it.
class MultiplexedClusterPipeline(  # type: ignore[misc]
    SharedClusterBatches, AsyncExactlyOnceClusterPipeline
):
    """A MULTIPLEX cluster's pipeline: each node's part on its shared connection."""


class MultiplexedRedisCluster(ClusterMultiplexing, AsyncNamedRedisCluster):  # type: ignore[misc]
    """A MULTIPLEX cluster's asyncio client: one shared connection per node per event loop."""

    pipeline_class = MultiplexedClusterPipeline


def build_async_client(
    spec: ConnectionSpec, *, fake_server: Any = None, client_cache: ClientCache | None = None
) -> AsyncClient:
    if spec.kind == "fake":
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=fake_server, **spec.options)
    if spec.kind == "sentinel":
        return _async_sentinel_client(spec, client_cache)
    if spec.kind == "cluster":
        return _async_cluster_client(spec)
    assert spec.url is not None
    pool = AsyncGuardedConnectionPool.from_url(
        spec.url,
        connection_class=async_connection_class(urlsplit(spec.url).scheme),
        **pool_kwargs(spec),
        **connection_kwargs(spec, AsyncRetry),
    )
    return _async_client_on(pool, spec, client_cache)


def _async_client_on(
    pool: Any, spec: ConnectionSpec, client_cache: ClientCache | None
) -> redis.asyncio.Redis:
    client: redis.asyncio.Redis
    if client_cache is None:
        if spec.multiplex:
            return multiplexed_client(pool, spec)
        return AsyncNamedRedis.from_pool(pool)
    if spec.multiplex:
        client = multiplexed_client(pool, spec, CachedMultiplexedRedis)
    else:
        client = CachedAsyncRedis.from_pool(pool)
    client_cache.serve(client)
    return client


async def aclose_client(client: AsyncClient) -> None:
    """Close the client's pool, and for Sentinel the connections to the sentinels too.

    Our pools close gracefully (:meth:`AsyncGuardedPool.retire`): a command another task has
    in flight completes, and its connection closes when it comes back.
    """
    multiplexer = getattr(client, "multiplexer", None)
    if multiplexer is not None:  # MULTIPLEX: its shared connection first
        await multiplexer.aclose()
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, AsyncGuardedPool):
        await pool.retire()
    else:
        await client.aclose()  # the async cluster, fakeredis
    manager = getattr(client, "sentinel_manager", None)
    if manager is not None:
        for sentinel in manager.sentinels:
            await sentinel.aclose()


def _async_sentinel_client(
    spec: ConnectionSpec, client_cache: ClientCache | None
) -> redis.asyncio.Redis:
    assert spec.service_name is not None
    kwargs = connection_kwargs(spec, AsyncRetry)
    manager = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
        list(spec.sentinels), sentinel_kwargs=sentinel_kwargs(spec)
    )
    ssl = bool(kwargs.pop("ssl", False))
    pool = AsyncGuardedSentinelConnectionPool(
        spec.service_name,
        manager,
        connection_class=async_connection_class("redis", sentinel=True, ssl=ssl),
        is_master=True,
        check_connection=False,
        **pool_kwargs(spec),
        **kwargs,
    )
    client = _async_client_on(pool, spec, client_cache)
    client.sentinel_manager = manager  # type: ignore[attr-defined]
    return client


def _async_cluster_client(spec: ConnectionSpec) -> AsyncNamedRedisCluster:
    assert spec.url is not None
    kwargs = connection_kwargs(spec, AsyncRetry)
    kwargs.pop("health_check_interval")  # not a parameter of the async cluster
    cls = MultiplexedRedisCluster if spec.multiplex else AsyncNamedRedisCluster
    client = cast(
        AsyncNamedRedisCluster,
        cls.from_url(
            spec.url,
            max_connections=spec.max_connections,
            **replica_reads(spec.read_from_replicas),
            **kwargs,
        ),
    )
    client.connection_name = spec.root
    if isinstance(client, MultiplexedRedisCluster):
        client.spec = spec  # its shared connections report under this spec
    # The nodes' pooled connections (with MULTIPLEX: those of blocking commands, transactions)
    client.node_gates = NodeGates(
        spec.root,
        max_connections=spec.max_connections,
        blocking=spec.blocking,
        pool_timeout=spec.pool_timeout,
    )
    # The async cluster hard-codes its connection class; swap in the guarded one before any
    # node connects (nodes are built from connection_kwargs, connections lazily). No pool of
    # ours makes these connections, so the class carries the name their errors give.
    guarded = cluster_connection_class(async_connection_class(urlsplit(spec.url).scheme), spec.root)
    client.connection_kwargs["connection_class"] = guarded
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = guarded
    if client.node_gates is not None:
        gate_nodes(client.nodes_manager.startup_nodes.values(), client.node_gates)
    return client
