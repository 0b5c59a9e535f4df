"""Build the redis.asyncio client for one spec, for the running event loop.

The pools mirror :mod:`redis_conn.pools`: a semaphore of MAX_CONNECTIONS permits, waiting up to
POOL_TIMEOUT when BLOCKING, failing at once otherwise, always with :class:`PoolExhausted`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.asyncio.sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn.clients import connection_kwargs, pool_kwargs, replica_reads, sentinel_kwargs
from redis_conn.config import ConnectionSpec
from redis_conn.exceptions import PoolExhausted
from redis_conn.guarded import async_connection_class, name_error, owes_replies
from redis_conn.pools import PoolUsage
from redis_conn.retry import AsyncRetry

if TYPE_CHECKING:
    from redis_conn.metrics import PoolObserver

AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


class _AsyncGuardedPoolMixin:
    max_connections: int
    #: Set by the metrics layer when metrics are on (redis_conn.metrics); None costs nothing.
    observer: PoolObserver | None = None

    def __init__(
        self,
        *args: Any,
        connection_name: str,
        blocking: bool = True,
        pool_timeout: float = 5.0,
        **kwargs: Any,
    ) -> None:
        self.connection_name = connection_name
        self.blocking = blocking
        self.pool_timeout = pool_timeout
        super().__init__(*args, **kwargs)
        self._permits = asyncio.BoundedSemaphore(self.max_connections)
        self._leased: set[Any] = set()
        self._made = 0

    def make_connection(self) -> Any:
        self._made += 1
        connection = super().make_connection()  # type: ignore[misc]
        connection.connection_name = self.connection_name
        return connection

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        observer = self.observer
        started = time.perf_counter() if observer is not None else 0.0
        if self.blocking:
            # Not asyncio.wait_for: on Python 3.11 it loses a cancellation that arrives just as
            # the permit does, and the cancelled request would go on to run its commands.
            try:
                async with asyncio.timeout(self.pool_timeout):
                    await self._permits.acquire()
            except TimeoutError:
                if observer is not None:
                    observer.timed_out()
                raise PoolExhausted(
                    self.connection_name, self.max_connections, waited=self.pool_timeout
                ) from None
        elif self._permits.locked():
            if observer is not None:
                observer.timed_out()
            raise PoolExhausted(self.connection_name, self.max_connections)
        else:
            await self._permits.acquire()
        try:
            connection = await super().get_connection(*args, **kwargs)  # type: ignore[misc]
        except BaseException:
            self._permits.release()
            raise
        self._leased.add(connection)
        if observer is not None:
            observer.waited(time.perf_counter() - started)
        return connection

    async def release(self, connection: Any) -> None:
        if owes_replies(connection):
            await connection.disconnect()
        leased = connection in self._leased
        self._leased.discard(connection)
        await super().release(connection)  # type: ignore[misc]
        if leased:
            self._permits.release()

    def usage(self) -> PoolUsage:
        return PoolUsage(
            pool_class="BlockingConnectionPool" if self.blocking else "ConnectionPool",
            max_connections=self.max_connections,
            created=self._made,
            in_use=len(self._leased),
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.connection_name!r} "
            f"max_connections={self.max_connections}>"
        )


class AsyncGuardedConnectionPool(_AsyncGuardedPoolMixin, redis.asyncio.connection.ConnectionPool):
    """Standalone, unix and TLS pools for asyncio."""


class AsyncGuardedSentinelConnectionPool(
    _AsyncGuardedPoolMixin, redis.asyncio.sentinel.SentinelConnectionPool
):
    """The asyncio pool of a Sentinel-managed primary."""


class AsyncNamedRedisCluster(redis.asyncio.cluster.RedisCluster):
    """redis-py's async cluster has no pool class to plug in: name its exhaustion errors here.

    Its nodes never block for a free connection; a full node raises at once.
    """

    connection_name = ""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except MaxConnectionsError as exc:
            if isinstance(exc, PoolExhausted):
                raise
            limit = int(self.connection_kwargs.get("max_connections", 0))
            raise PoolExhausted(self.connection_name, limit) from exc
        except (RedisConnectionError, RedisTimeoutError) as exc:
            name_error(exc, self.connection_name)
            raise


def build_async_client(spec: ConnectionSpec, *, fake_server: Any = None) -> AsyncClient:
    if spec.kind == "fake":
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=fake_server, **spec.options)
    if spec.kind == "sentinel":
        return _async_sentinel_client(spec)
    if spec.kind == "cluster":
        return _async_cluster_client(spec)
    assert spec.url is not None
    pool = AsyncGuardedConnectionPool.from_url(
        spec.url,
        connection_class=async_connection_class(urlsplit(spec.url).scheme),
        **pool_kwargs(spec),
        **connection_kwargs(spec, AsyncRetry),
    )
    return redis.asyncio.Redis.from_pool(pool)


async def aclose_client(client: AsyncClient) -> None:
    """Close the client's pool, and for Sentinel the connections to the sentinels too."""
    await client.aclose()
    manager = getattr(client, "sentinel_manager", None)
    if manager is not None:
        for sentinel in manager.sentinels:
            await sentinel.aclose()


def _async_sentinel_client(spec: ConnectionSpec) -> redis.asyncio.Redis:
    assert spec.service_name is not None
    kwargs = connection_kwargs(spec, AsyncRetry)
    manager = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
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
    client = redis.asyncio.Redis.from_pool(pool)
    client.sentinel_manager = manager  # type: ignore[attr-defined]
    return client


def _async_cluster_client(spec: ConnectionSpec) -> AsyncNamedRedisCluster:
    assert spec.url is not None
    kwargs = connection_kwargs(spec, AsyncRetry)
    kwargs.pop("health_check_interval")  # not a parameter of the async cluster
    client = cast(
        AsyncNamedRedisCluster,
        AsyncNamedRedisCluster.from_url(
            spec.url,
            max_connections=spec.max_connections,
            **replica_reads(spec.read_from_replicas),
            **kwargs,
        ),
    )
    client.connection_name = spec.root
    # The async cluster hard-codes its connection class; swap in the guarded one before any
    # node connects (nodes are built from connection_kwargs, connections lazily).
    guarded = async_connection_class(urlsplit(spec.url).scheme)
    client.connection_kwargs["connection_class"] = guarded
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = guarded
    return client
