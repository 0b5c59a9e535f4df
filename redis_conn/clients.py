"""Build the redis-py client for one validated connection spec (sync side)."""

from __future__ import annotations

from functools import cache, partial
from typing import Any, cast
from urllib.parse import urlsplit

import redis
import redis.cluster
import redis.sentinel
from redis.cluster import LoadBalancingStrategy
from redis.driver_info import DriverInfo

from redis_conn.cached_reads import CachedRedis
from redis_conn.client_cache import ClientCache
from redis_conn.cluster import NamedRedisCluster, cluster_connection_class
from redis_conn.config import ConnectionSpec
from redis_conn.guarded import sync_connection_class
from redis_conn.named_clients import NamedRedis
from redis_conn.pools import GuardedConnectionPool, GuardedPool, GuardedSentinelConnectionPool
from redis_conn.retry import Retry, make_retry

Client = redis.Redis | redis.cluster.RedisCluster


@cache
def driver_info() -> DriverInfo:
    """What connections tell the server about the client (``CLIENT SETINFO``), made once.

    Without it redis-py looks its own version up in the installed package metadata for every
    new connection: slow, and an interrupt landing in that lookup can leave the half-made
    connection referenced from importlib's frames, so its pool place is never freed.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("redis_conn")
    except PackageNotFoundError:  # imported from a checkout that was never installed
        ours = "0"
    info = DriverInfo(name="redis-py", lib_version=redis.__version__)
    return info.add_upstream_driver("redis_conn", ours)


def connection_kwargs(spec: ConnectionSpec, retry_class: type[Any] = Retry) -> dict[str, Any]:
    """Keyword arguments every connection of ``spec`` gets, OPTIONS last (they were vetted)."""
    kwargs: dict[str, Any] = {
        "socket_timeout": spec.socket_timeout,
        "socket_connect_timeout": spec.socket_connect_timeout,
        "health_check_interval": spec.health_check_interval,
        "retry": make_retry(spec.retry, retry_class),
        "driver_info": driver_info(),
    }
    if spec.client_name is not None:  # CLIENT SETNAME on connect (redis_conn.naming)
        kwargs["client_name"] = spec.client_name
    kwargs.update(spec.options)
    return kwargs


def sentinel_kwargs(spec: ConnectionSpec) -> dict[str, Any]:
    """How to reach the sentinels themselves: our timeouts unless SENTINEL_KWARGS says otherwise."""
    kwargs: dict[str, Any] = {
        "socket_timeout": spec.socket_timeout,
        "socket_connect_timeout": spec.socket_connect_timeout,
    }
    if spec.client_name is not None:  # the sentinels list who asks them, too
        kwargs["client_name"] = spec.client_name
    kwargs.update(spec.sentinel_kwargs)
    return kwargs


def pool_kwargs(spec: ConnectionSpec) -> dict[str, Any]:
    return {
        "connection_name": spec.root,
        "blocking": spec.blocking,
        "pool_timeout": spec.pool_timeout,
        "max_connections": spec.max_connections,
    }


def build_client(
    spec: ConnectionSpec, *, fake_server: Any = None, client_cache: ClientCache | None = None
) -> Client:
    """A client for ``spec``; nothing connects until the first command. ``client_cache``:
    its CLIENT_CACHE's local copies (standalone and Sentinel)."""
    if spec.kind == "fake":
        import fakeredis

        return fakeredis.FakeRedis(server=fake_server, **spec.options)
    if spec.kind == "sentinel":
        return _sentinel_client(spec, client_cache)
    if spec.kind == "cluster":
        return _cluster_client(spec)
    assert spec.url is not None
    scheme = urlsplit(spec.url).scheme
    pool = GuardedConnectionPool.from_url(
        spec.url,
        connection_class=sync_connection_class(scheme),
        **pool_kwargs(spec),
        **connection_kwargs(spec),
    )
    return _client_on(pool, client_cache)


def _client_on(pool: Any, client_cache: ClientCache | None) -> redis.Redis:
    if client_cache is None:
        return NamedRedis.from_pool(pool)
    client = CachedRedis.from_pool(pool)
    client_cache.serve(client)
    return client


def close_client(client: Client) -> None:
    """Close the client's pools, and for Sentinel the connections to the sentinels too.

    Our pools close gracefully: idle sockets now, lent ones when they come back, so a command
    that another thread has in flight completes instead of failing on a closed socket.
    """
    if isinstance(client, redis.cluster.RedisCluster):
        for node in client.get_nodes():  # type: ignore[no-untyped-call]
            if node.redis_connection is not None:
                _close_pool(node.redis_connection.connection_pool)
    else:
        _close_pool(client.connection_pool)
    manager = getattr(client, "sentinel_manager", None)
    if manager is not None:
        for sentinel in manager.sentinels:
            sentinel.close()


def _close_pool(pool: Any) -> None:
    if isinstance(pool, GuardedPool):
        pool.retire()
    else:
        pool.disconnect()


def _sentinel_client(spec: ConnectionSpec, client_cache: ClientCache | None) -> redis.Redis:
    assert spec.service_name is not None
    kwargs = connection_kwargs(spec)
    manager = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
        list(spec.sentinels), sentinel_kwargs=sentinel_kwargs(spec)
    )
    ssl = bool(kwargs.pop("ssl", False))
    pool = GuardedSentinelConnectionPool(
        spec.service_name,
        manager,
        connection_class=sync_connection_class("redis", sentinel=True, ssl=ssl),
        is_master=True,
        check_connection=False,
        **pool_kwargs(spec),
        **kwargs,
    )
    client = _client_on(pool, client_cache)
    client.sentinel_manager = manager  # type: ignore[attr-defined]  # health reads it
    return client


def _cluster_client(spec: ConnectionSpec) -> NamedRedisCluster:
    assert spec.url is not None
    scheme = urlsplit(spec.url).scheme
    kwargs = connection_kwargs(spec)
    node_pool = partial(
        GuardedConnectionPool,
        connection_name=spec.root,
        blocking=spec.blocking,
        pool_timeout=spec.pool_timeout,
    )
    client = cast(
        NamedRedisCluster,
        NamedRedisCluster.from_url(
            spec.url,
            max_connections=spec.max_connections,
            connection_pool_class=node_pool,
            connection_class=cluster_connection_class(sync_connection_class(scheme), spec.root),
            **replica_reads(spec.read_from_replicas),
            **kwargs,
        ),
    )
    client.connection_name = spec.root  # for the errors of its commands and pipelines
    return client


def replica_reads(enabled: bool) -> dict[str, Any]:
    """READ_FROM_REPLICAS as the installed redis-py wants it (read_from_replicas is deprecated)."""
    if not enabled:
        return {}
    return {"load_balancing_strategy": LoadBalancingStrategy.ROUND_ROBIN_REPLICAS}
