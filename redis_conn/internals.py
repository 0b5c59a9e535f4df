"""Every reliance on what redis-py does not promise, in one place (CONTRACT section 13).

redis_conn builds on redis-py's pools, connections and pipelines. Most of that is public API;
what is not (a private attribute, a method redis-py calls on itself that we override, a name
importable but undocumented) is used only through this module, and listed in
:data:`RELIED_ON`, which ``tests/test_internals.py`` checks on the installed version: a release
that drops one fails that test with a sentence naming it, instead of failing a user's command.

Where redis-py has a public (or newer) way, it is used when present and the older one only as a
fallback for the oldest version ``pyproject.toml`` admits:

- ``ConnectionPool.ensure_connection`` (redis-py 8): the readiness check of a lent connection,
  which redis-py 8.2 changed (pending push notifications, a re-check after reconnecting). On
  7.x, the same check as 7.4.1's ``get_connection`` makes inline.
- sync ``Connection.is_connected`` (redis-py 8) or ``_sock`` (7.x).
- asyncio ``Connection.can_read`` (redis-py 8) or ``can_read_destructive`` (7.x).
- asyncio ``ConnectionPool.ensure_connection``, followed by our own idle-socket check where
  redis-py 8 before 8.2 (seen on 8.1.0) skips theirs (:func:`ensure_async_connection`).

What does *not* live here, by design: the multiplexer no longer impersonates a connection by
copying attributes redis-py reads (``_resp2_fallback`` broke that in 8.2); its stand-ins
delegate whatever they do not define to the real connection (:mod:`redis_conn.multiplex`).
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio.client
import redis.asyncio.connection
import redis.connection
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.commands.cluster import READ_COMMANDS
from redis.event import AfterConnectionReleasedEvent, AsyncAfterConnectionReleasedEvent
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import HIREDIS_AVAILABLE

__all__ = [
    "EMPTY_RESPONSE",
    "HIREDIS_AVAILABLE",
    "NEVER_DECODE",
    "READ_COMMANDS",
    "RELIED_ON",
    "PoolInternals",
    "Reliance",
    "cluster_nodes",
    "cluster_slot",
    "ensure_async_connection",
    "ensure_connection",
    "follow_moved",
    "free_connections",
    "has_data",
    "hiredis_packer",
    "is_connected",
    "node_connections",
    "node_lost",
    "refresh_wanted",
    "run_pipeline_batch",
    "socket_of",
]


@dataclass(frozen=True)
class Reliance:
    """One thing redis_conn uses that redis-py does not promise, and why."""

    owner: str  # an importable dotted name: a module or a class
    name: str  # the attribute of ``owner``
    why: str
    instance: bool = False  # set on instances (by __init__/reset), not on the class
    alternatives: tuple[str, ...] = ()  # other names that serve where this one is missing


RELIED_ON: tuple[Reliance, ...] = (
    # -- the pools (redis_conn.pools, redis_conn.async_pools) subclass redis-py's pools --------
    Reliance(
        "redis.connection.ConnectionPool",
        "reset",
        "our pools reset their leases there; redis-py calls it when made and in a forked child",
    ),
    Reliance(
        "redis.connection.ConnectionPool",
        "_checkpid",
        "a pool used in a forked child starts over (redis-py's own fork check)",
    ),
    Reliance(
        "redis.connection.ConnectionPool",
        "_available_connections",
        "the idle connections redis-py's own methods (disconnect, ...) also walk",
        instance=True,
    ),
    Reliance(
        "redis.connection.ConnectionPool",
        "_created_connections",
        "redis-py's cap counts every connection ever made; ours counts what is held now",
        instance=True,
    ),
    Reliance(
        "redis.connection.ConnectionPool",
        "_event_dispatcher",
        "the connection-released event, as redis-py's pool dispatches it",
        instance=True,
    ),
    Reliance(
        "redis.connection.ConnectionPool",
        "ensure_connection",
        "the readiness check of a lent connection",
        alternatives=("maint_notifications_enabled",),
    ),
    Reliance("redis.asyncio.connection.ConnectionPool", "reset", "as the sync pool's"),
    Reliance(
        "redis.asyncio.connection.ConnectionPool",
        "maint_notifications_enabled",
        "whether redis-py 8.1's ensure_connection skipped its idle-socket check "
        "(ensure_async_connection); 7.x has none and always checks",
        alternatives=("ensure_connection",),
    ),
    Reliance(
        "redis.asyncio.connection.ConnectionPool",
        "_available_connections",
        "as the sync pool's",
        instance=True,
    ),
    Reliance(
        "redis.asyncio.connection.ConnectionPool",
        "_lock",
        "redis-py's re-authentication and maintenance handlers use idle connections under it: "
        "a checkout waits while it is held",
        instance=True,
    ),
    Reliance(
        "redis.asyncio.connection.ConnectionPool",
        "_event_dispatcher",
        "as the sync pool's",
        instance=True,
    ),
    # -- the guarded connections (redis_conn.guarded) override redis-py's own hooks -----------
    Reliance(
        "redis.connection.AbstractConnection",
        "connect_check_health",
        "the handshake, counted as owing a reply until it is through",
    ),
    Reliance(
        "redis.connection.AbstractConnection",
        "on_connect_check_health",
        "a refused CLIENT SETNAME explained",
    ),
    Reliance(
        "redis.connection.AbstractConnection",
        "is_connected",
        "whether a socket is open",
        alternatives=("_sock",),
    ),
    Reliance(
        "redis.asyncio.connection.AbstractConnection",
        "connect_check_health",
        "as the sync connection's",
    ),
    Reliance(
        "redis.connection.AbstractConnection",
        "_sock",
        "the client cache's invalidation thread waits on its socket with select, reading "
        "only when data is there (redis_conn.invalidations)",
        instance=True,
    ),
    Reliance(
        "redis.asyncio.connection.AbstractConnection",
        "on_connect_check_health",
        "as the sync connection's",
    ),
    Reliance(
        "redis.asyncio.connection.AbstractConnection",
        "can_read",
        "data or EOF on an idle connection",
        alternatives=("can_read_destructive",),
    ),
    # -- the multiplexer (redis_conn.multiplex, redis_conn.multiplex_client) ---------------------
    Reliance(
        "redis.asyncio.client.Pipeline",
        "_execute_pipeline",
        "a pipeline sent on the shared connection is redis-py's own packing and reading",
    ),
    Reliance("redis.asyncio.client.Pipeline", "_execute_transaction", "as _execute_pipeline"),
    Reliance(
        "redis.asyncio.client.Pipeline", "command_stack", "the queued commands", instance=True
    ),
    Reliance(
        "redis.connection",
        "HiredisRespSerializer",
        "hiredis packs commands for the shared connection in half the time",
    ),
    Reliance("redis.client", "NEVER_DECODE", "the option that asks for an undecoded reply"),
    Reliance("redis.client", "EMPTY_RESPONSE", "the option that turns an error into a value"),
    Reliance("redis.utils", "HIREDIS_AVAILABLE", "whether hiredis is there"),
    # -- Redis Cluster (redis_conn.cluster, redis_conn.options, redis_conn.async_clients) -----
    Reliance(
        "redis.cluster.RedisCluster",
        "determine_slot",
        "routing a batch's commands as redis-py routes them (with the instance's command_flags)",
    ),
    Reliance(
        "redis.cluster.NodesManager",
        "get_node_from_slot",
        "the node (or replica) that serves a slot",
    ),
    Reliance("redis.cluster.NodesManager", "move_slot", "following MOVED inside a batch"),
    Reliance(
        "redis.cluster.NodesManager", "initialize", "refreshing the slot map after a lost node"
    ),
    Reliance(
        "redis.cluster",
        "cleanup_kwargs",
        "which options the sync cluster hands on to its nodes (a setting it would drop is refused)",
    ),
    Reliance(
        "redis.asyncio.cluster.NodesManager",
        "startup_nodes",
        "the asyncio cluster hard-codes its connection class: ours is swapped in on its nodes",
    ),
    Reliance("redis.asyncio.cluster.ClusterNode", "connection_class", "as startup_nodes"),
    # -- the pooled asyncio cluster's nodes (redis_conn.async_cluster_nodes) --------------------
    Reliance(
        "redis.asyncio.cluster.NodesManager",
        "nodes_cache",
        "the nodes redis-py made, re-classed as gated nodes (BLOCKING per node)",
        instance=True,
    ),
    Reliance(
        "redis.asyncio.cluster.ClusterNode",
        "acquire_connection",
        "a node lends a connection only with a permit of its gate",
    ),
    Reliance(
        "redis.asyncio.cluster.ClusterNode",
        "release",
        "a transaction's connection gives its permit back",
    ),
    Reliance(
        "redis.asyncio.cluster.ClusterNode",
        "execute_pipeline",
        "a node's part of a pipeline waits for a permit; a lost reply stays lost",
    ),
    Reliance(
        "redis.asyncio.cluster.ClusterNode",
        "_free",
        "the idle connections: taken out while they close; one redis-py 7.4 forgot taken back",
        instance=True,
    ),
    Reliance(
        "redis.asyncio.cluster.ClusterNode",
        "_connections",
        "every connection a node holds, lent or idle: the health report counts them",
        instance=True,
    ),
    # -- MULTIPLEX on Redis Cluster (redis_conn.multiplex_cluster) ------------------------------
    Reliance(
        "redis.asyncio.cluster.RedisCluster",
        "_determine_slot",
        "a command's slot as redis-py computes it (its key extraction, EVAL/FCALL, SLOT_ID "
        "commands, the cross-slot check)",
    ),
    Reliance(
        "redis.asyncio.cluster.RedisCluster",
        "_initialize",
        "whether redis-py wants its slot map refreshed before the next command",
        instance=True,
    ),
    Reliance(
        "redis.asyncio.cluster.RedisCluster",
        "_request_refresh",
        "asking for a slot map refresh after a node was lost (redis-py 8; 7.x sets _initialize)",
        alternatives=("_initialize",),
    ),
    Reliance(
        "redis.asyncio.cluster.NodesManager",
        "get_node_from_slot",
        "the node (or replica) that serves a slot",
    ),
    Reliance(
        "redis.asyncio.cluster.NodesManager",
        "move_slot",
        "following MOVED on the shared connections (a coroutine in redis-py 8, plain in 7.x)",
    ),
    Reliance(
        "redis.asyncio.cluster.NodesManager",
        "move_node_to_end_of_cached_nodes",
        "a lost node is asked last when the slot map is refreshed, as redis-py does",
    ),
    Reliance(
        "redis.asyncio.cluster.NodesManager",
        "remap_host_port",
        "the address an ASK redirect names, through OPTIONS['address_remap']",
    ),
    Reliance(
        "redis.asyncio.cluster.ClusterNode",
        "disconnect_free_connections",
        "a lost node's idle pooled connections are closed, as redis-py closes them",
    ),
    Reliance(
        "redis.asyncio.cluster.ClusterNode",
        "parse_response",
        "a node's reply callbacks, applied to a reply read on the shared connection",
    ),
    Reliance(
        "redis.commands.cluster",
        "READ_COMMANDS",
        "which commands are read-only: only "
        "those are ever sent again after a lost reply (redis_conn.read_only)",
    ),
)


# -- connections -------------------------------------------------------------------------------


def is_connected(connection: Any) -> bool:
    """Whether a sync connection has a socket (redis-py 7 has no sync ``is_connected``)."""
    try:
        return bool(connection.is_connected)
    except AttributeError:
        return connection._sock is not None


def socket_of(connection: Any) -> Any:
    """A connected sync connection's socket (to wait on it with ``select``), or None."""
    return connection._sock


async def has_data(connection: Any) -> bool:
    """Whether an idle asyncio connection has anything to read: data, or end of file."""
    check = getattr(connection, "can_read", None) or connection.can_read_destructive
    return bool(await check())


# Whether this redis-py's asyncio ensure_connection can skip its idle-socket check: it has
# maintenance notifications (7.x has none) and no handle_pending_push_notifications (8.2's).
_ASYNC_IDLE_CHECK_SKIPPED = hasattr(
    redis.asyncio.connection.ConnectionPool, "maint_notifications_enabled"
) and not hasattr(redis.asyncio.connection.AbstractConnection, "handle_pending_push_notifications")


async def ensure_async_connection(pool: Any, connection: Any) -> None:
    """Connect an asyncio ``connection`` and make sure it is ready to send: redis-py's
    ``ensure_connection``, and where that skips its check, ours.

    redis-py 8 before 8.2 (seen on 8.1.0) skips the check of an idle connection whenever
    maintenance notifications are enabled, which is the default (``"auto"``): a socket the
    server closed while idle (a restart) was lent, and the write sent on it lost. 8.2 reads the
    pending push notifications instead (``handle_pending_push_notifications``), which raises
    for a closed socket; 7.x always checks."""
    await pool.ensure_connection(connection)
    if (
        _ASYNC_IDLE_CHECK_SKIPPED
        and pool.maint_notifications_enabled()
        and await has_data(connection)
    ):
        await connection.disconnect()
        await connection.connect()


def ensure_connection(pool: Any, connection: Any) -> None:
    """Connect ``connection`` and make sure it is ready to send, as redis-py's pool does."""
    ensure = getattr(pool, "ensure_connection", None)
    if ensure is not None:  # redis-py 8
        ensure(connection)
        return
    # redis-py 7.x makes the same check inline in get_connection.
    connection.connect()
    try:
        if connection.can_read() and pool.cache is None and not pool.maint_notifications_enabled():
            raise RedisConnectionError("Connection has data")
    except (RedisConnectionError, RedisTimeoutError, OSError):
        connection.disconnect()
        connection.connect()
        if connection.can_read():
            raise RedisConnectionError("Connection not ready") from None


# -- pools -------------------------------------------------------------------------------------


class PoolInternals:
    """The state our pools share with redis-py's ``ConnectionPool`` they are mixed into.

    redis-py's own methods read ``_available_connections`` (idle) and ``_in_use_connections``
    (lent); ours keep lent connections as weak leases and provide that set from them.
    """

    _available_connections: list[Any]

    @abstractmethod
    def lent_connections(self) -> set[Any]:
        """The connections lent out now: the pools' own leases say."""

    @property
    def idle(self) -> list[Any]:
        return self._available_connections

    @idle.setter
    def idle(self, value: list[Any]) -> None:
        self._available_connections = value

    @property
    def _in_use_connections(self) -> set[Any]:
        return self.lent_connections()

    @_in_use_connections.setter
    def _in_use_connections(self, value: Any) -> None:
        pass  # redis-py's reset() assigns an empty set; our leases live elsewhere

    def forget_creation_count(self) -> None:
        self._created_connections = 0

    def check_fork(self) -> None:
        self._checkpid()  # type: ignore[attr-defined]

    def announce_release(self, connection: Any) -> None:
        event = AfterConnectionReleasedEvent(connection)  # type: ignore[no-untyped-call]
        self._event_dispatcher.dispatch(event)  # type: ignore[attr-defined]

    async def aannounce_release(self, connection: Any) -> None:
        event = AsyncAfterConnectionReleasedEvent(connection)  # type: ignore[no-untyped-call]
        await self._event_dispatcher.dispatch_async(event)  # type: ignore[attr-defined]

    def redis_py_lock_held(self) -> bool:
        """Whether redis-py's own code holds the asyncio pool's ``_lock``: its
        ``re_auth_callback`` (a streaming credential provider's refresh) and its maintenance
        notification handlers use idle connections under it (``tests/test_pool_compat.py``)."""
        return bool(self._lock.locked())  # type: ignore[attr-defined]

    async def await_redis_py_lock(self) -> None:
        async with self._lock:  # type: ignore[attr-defined]
            pass  # nothing suspends between here and the caller's taking a connection


# -- the multiplexer ---------------------------------------------------------------------------


def hiredis_packer() -> Callable[..., Any] | None:
    """hiredis's command packer, or None without hiredis."""
    if not HIREDIS_AVAILABLE:
        return None
    from redis.connection import HiredisRespSerializer

    return HiredisRespSerializer().pack  # type: ignore[no-untyped-call, no-any-return, unused-ignore]


async def run_pipeline_batch(
    pipe: redis.asyncio.client.Pipeline,
    connection: Any,
    stack: list[Any],
    raise_on_error: bool,
    *,
    transaction: bool,
) -> list[Any]:
    """Send ``stack`` on ``connection`` and read its replies with redis-py's own pipeline code."""
    run = pipe._execute_transaction if transaction else pipe._execute_pipeline
    return await run(connection, stack, raise_on_error)  # type: ignore[no-any-return]


# -- the pooled asyncio cluster's nodes ------------------------------------------------------------


def free_connections(node: Any) -> Any:
    """An asyncio cluster node's idle connections (a deque redis-py lends from)."""
    return node._free


def node_connections(node: Any) -> list[Any]:
    """Every connection an asyncio cluster node holds, lent or idle."""
    return list(node._connections)


def cluster_nodes(cluster: Any) -> list[Any]:
    """The nodes an asyncio cluster client knows now."""
    return list(cluster.nodes_manager.nodes_cache.values())


# -- MULTIPLEX on Redis Cluster ----------------------------------------------------------------


async def cluster_slot(cluster: Any, args: tuple[Any, ...]) -> int:
    """The slot of a command, as redis-py's asyncio cluster routes it (raises its own errors:
    keys in several slots, no key, an unknown command)."""
    return int(await cluster._determine_slot(*args))


def refresh_wanted(cluster: Any) -> bool:
    """Whether redis-py wants to reload the slot map before the next command
    (``initialize()`` then does it, when due)."""
    return bool(cluster._initialize)


async def node_lost(cluster: Any, node: Any) -> None:
    """After ``node``'s shared connection was lost: what redis-py's own command path does after
    a connection error on a node. Its idle pooled connections are closed (the server may have
    closed them all: a write on one would be lost after the write), the slot map is reloaded
    before the next command, and that node is asked last."""
    await node.disconnect_free_connections()  # they reconnect when next used
    cluster.nodes_manager.move_node_to_end_of_cached_nodes(node.name)
    request = getattr(cluster, "_request_refresh", None)
    if request is not None:  # redis-py 8: merged requests, paced refreshes
        request(last_failed_node_name=node.name)
    else:
        cluster._initialize = True


async def follow_moved(cluster: Any, error: Any) -> None:
    """Point the slot a MOVED reply names at the node it names (redis-py's own patching)."""
    moved = cluster.nodes_manager.move_slot(error)
    if inspect.isawaitable(moved):
        await moved
