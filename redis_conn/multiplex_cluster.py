"""The asyncio client of a MULTIPLEX connection on Redis Cluster (CONTRACT section 12).

:class:`ClusterMultiplexing` makes redis-py's asyncio ``RedisCluster`` (mixed in front of
:class:`~redis_conn.async_clients.AsyncNamedRedisCluster`, as
``async_clients.MultiplexedRedisCluster``) send its commands for one slot on a
:class:`~redis_conn.multiplex.Multiplexer` of the node that serves the slot: one shared
connection per node per event loop (the client is one per loop). The routing is redis-py's:
its slot computation and key extraction (``_determine_slot``), its slot map (the nodes manager,
replicas for READ_FROM_REPLICAS), its reply callbacks (the node's ``parse_response``).

What goes where:

- a command whose keys are in one slot: the shared connection of the slot's node;
- a command redis-py routes otherwise (no key, keys in several slots, ``target_nodes``, a
  command sent to all nodes or a random one, one whose replies redis-py merges): redis-py's own
  ``execute_command``, on the nodes' pools, so it is split, refused or merged as redis-py does;
- blocking commands, pub/sub, WATCH/MULTI transactions and the rest of
  :func:`~redis_conn.multiplex_client.needs_dedicated`: the pooled connections of the node that
  owns the slot, as redis-py sends them;
- a non-transactional pipeline (and so each cluster batch of :mod:`redis_conn.async_pipeline`):
  split per node by :mod:`redis_conn.multiplex_cluster_batch` (the client's ``pipeline_class``),
  each node's part one contiguous write on its shared connection, all nodes at once.

Redirects are refusals (the command did not run), so following them is not a re-send: MOVED
updates redis-py's slot map and the command goes to the node named; ASK sends ``ASKING`` and
the command as one contiguous write on the target's shared connection (nothing of another task
can come between them); TRYAGAIN waits and tries again; CLUSTERDOWN and an uncovered slot hand
the command to redis-py, which refreshes the slot map and retries as it always does.

A lost node fails only what was in flight to it (each node has its own multiplexer): a write
with :class:`~redis_conn.exceptions.ConnectionLostAfterWrite`, never re-sent, and the slot map
is refreshed before the next command. What was never written (the node refused the connection)
and read-only commands go to redis-py's own command path, which refreshes the slot map and
retries per RETRY.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn import messages
from redis_conn.config import ConnectionSpec
from redis_conn.exceptions import OutcomeUnknown, ReplyNotUnderstood
from redis_conn.guarded import name_error
from redis_conn.internals import (
    NEVER_DECODE,
    READ_COMMANDS,
    cluster_slot,
    follow_moved,
    node_lost,
    refresh_wanted,
)
from redis_conn.multiplex import Multiplexer
from redis_conn.multiplex_client import needs_dedicated
from redis_conn.read_only import command_name
from redis_conn.retry import AsyncRetry, make_retry

__all__ = ["ClusterMultiplexing", "NodePool", "Routing"]

if TYPE_CHECKING:  # what the mixin is mixed in front of
    from redis.asyncio.cluster import RedisCluster as _Cluster
else:
    _Cluster = object

# Refusals redis-py answers by refreshing its slot map, and then retrying.
REDIS_PY_REFUSALS = (ClusterDownError, SlotNotCoveredError)
TRY_AGAIN_DELAY = 0.05  # seconds; redis-py's own pause on TRYAGAIN
_MAX_NAMES = 1024  # command names remembered (a few dozen in practice)


class NodePool:
    """What a :class:`~redis_conn.multiplex.Multiplexer` needs of a pool, for one cluster node:
    the node's connection settings, and new connections made as the node makes its own (so the
    handshake, READONLY for replica reads included, is redis-py's). As redis-py's node
    connections, they do not retry connecting: a node that cannot be reached sends the command
    (never written) to redis-py's command path, which refreshes the slot map and retries."""

    def __init__(self, node: Any) -> None:
        self._node = node
        self.connection_kwargs = node.connection_kwargs

    def make_connection(self) -> Any:
        kwargs = {**self._node.connection_kwargs, "retry": make_retry(0, AsyncRetry)}
        return self._node.connection_class(**kwargs)


class Routing:
    """Per command name, decided once: does it ride a shared connection, and may it read from
    a replica? (From redis-py's tables: node flags, merged replies, read-only commands.)"""

    def __init__(self, cluster: Any) -> None:
        self._cluster = cluster
        self._by_name: dict[Any, tuple[bool, bool]] = {}

    def __call__(self, args: tuple[Any, ...], options: dict[str, Any]) -> tuple[bool, bool]:
        """``(shared, replica)`` for this command."""
        if options.get("target_nodes") is not None or needs_dedicated(args):
            return False, False
        name = args[0]
        try:
            known = self._by_name.get(name)
        except TypeError:  # an unhashable name (memoryview): decided every time
            return self._decide(command_name(args))
        if known is None:
            full = command_name(args)
            known = self._decide(full)
            # A container command (CLIENT, MEMORY, ...) is decided by its subcommand: not
            # cached by its first word. Nor is a command without arguments (no key: redis-py's).
            if " " not in full and len(args) > 1 and len(self._by_name) < _MAX_NAMES:
                self._by_name[name] = known
        return known

    def _decide(self, name: str) -> tuple[bool, bool]:
        cluster = self._cluster
        first = name.split(" ")[0]
        flagged = any(
            n in cluster.command_flags or n in cluster.result_callbacks for n in (name, first)
        )
        replica = (
            bool(cluster.read_from_replicas or cluster.load_balancing_strategy is not None)
            and first in READ_COMMANDS
        )
        return not flagged, replica


class ClusterMultiplexing(_Cluster):
    """Mixed in front of redis-py's asyncio cluster: its one-slot commands ride one shared
    connection per node."""

    spec: ConnectionSpec | None = None  # set by the client builder
    connection_name: str
    pipeline_class: Any  # the non-transactional pipeline (multiplex_cluster_batch)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._multiplexers: dict[str, Multiplexer] = {}
        self.routing = Routing(self)

    # -- the shared connections --------------------------------------------------------------

    def node_multiplexer(self, node: Any) -> Multiplexer:
        """The shared connection of ``node`` on this client's event loop."""
        mux = self._multiplexers.get(node.name)
        if mux is None:
            assert self.spec is not None
            mux = self._multiplexers[node.name] = Multiplexer(
                NodePool(node), self.spec, node=node.name
            )
        return mux

    @property
    def multiplexers(self) -> dict[str, Multiplexer]:
        """The shared connections made so far, by node (``host:port``)."""
        return dict(self._multiplexers)

    async def slot_node(self, args: tuple[Any, ...], slot: int, replica: bool) -> Any:
        """The node that serves ``slot`` for this command now (a replica if it may read there)."""
        if refresh_wanted(self):
            await self.initialize()  # redis-py's: refreshes the slot map when due
        strategy = self.load_balancing_strategy if replica else None
        return self.nodes_manager.get_node_from_slot(slot, replica, strategy)

    async def route(self, args: tuple[Any, ...], replica: bool) -> tuple[int, Any]:
        """The slot and node of a one-slot command (redis-py's errors when it is not one)."""
        if refresh_wanted(self):
            await self.initialize()
        slot = await cluster_slot(self, args)
        return slot, await self.slot_node(args, slot, replica)

    # -- commands ----------------------------------------------------------------------------

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        shared, replica = self.routing(args, kwargs)
        if not shared:
            return await super().execute_command(*args, **kwargs)
        try:
            slot, node = await self.route(args, replica)
        except (RedisError, RedisClusterException):
            # No key, keys in several slots, an unknown command, an uncovered slot: nothing
            # was sent; redis-py splits it, refuses it or routes it as it always does.
            return await super().execute_command(*args, **kwargs)
        asking = False
        for _ in range(self.RedisClusterRequestTTL):
            try:
                return await self._send(node, args, kwargs, asking=asking)
            except MovedError as exc:
                await follow_moved(self, exc)
                try:
                    node, asking = await self.slot_node(args, slot, replica), False
                except (RedisError, RedisClusterException):  # not covered now: redis-py's way
                    return await super().execute_command(*args, **kwargs)
            except AskError as exc:
                target = self.get_node(*self.nodes_manager.remap_host_port(exc.host, exc.port))
                if target is None:  # a node the slot map does not know yet: redis-py learns it
                    return await super().execute_command(*args, **kwargs)
                node, asking = target, True
            except TryAgainError:
                await asyncio.sleep(TRY_AGAIN_DELAY)
            except REDIS_PY_REFUSALS:
                return await super().execute_command(*args, **kwargs)
            except OutcomeUnknown as exc:  # written, then lost (or unreadable): never again
                if not isinstance(exc, ReplyNotUnderstood):  # the node may be gone
                    await node_lost(self, node)
                name_error(exc, self.connection_name)
                raise
            except (RedisConnectionError, RedisTimeoutError):
                # Never written (the node could not be reached), or read-only: redis-py's
                # command path refreshes the slot map and retries it per RETRY.
                await node_lost(self, node)
                return await super().execute_command(*args, **kwargs)
        raise ClusterError(
            f"{messages.prefix(self.connection_name)}{command_name(args)} was redirected "
            f"{self.RedisClusterRequestTTL} times; it was not run."
        )

    async def _send(
        self, node: Any, args: tuple[Any, ...], options: dict[str, Any], *, asking: bool
    ) -> Any:
        mux = self.node_multiplexer(node)
        raw = NEVER_DECODE in options
        if not asking:
            reply_of: Any = mux.send(args, raw)
            batch = None
        else:  # ASKING and the command in one write: nothing can come between them
            data = [*mux.pack(("ASKING",)), *mux.pack(args)]
            batch = mux.send_batch(data, 2, [False, raw], command_name(args))
            reply_of = batch.slots[1]
        try:
            if batch is not None:
                with contextlib.suppress(ResponseError):  # the command's own reply says it all
                    await batch.slots[0].read_response()
            return await node.parse_response(reply_of, args[0], **options)
        except (RedisError, RedisClusterException):
            raise
        except BaseException as exc:
            if batch is not None:
                batch.abandon()
            if isinstance(exc, Exception):  # the client failed once the command was written
                raise ReplyNotUnderstood(mux.name, command_name(args), exc) from exc
            raise

    # -- pipelines ---------------------------------------------------------------------------

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if transaction or shard_hint:  # MULTI/EXEC: the pooled connection of the slot's node
            return super().pipeline(transaction=transaction, shard_hint=shard_hint)
        return self.pipeline_class(self, transaction)

    # -- closing -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        muxes, self._multiplexers = list(self._multiplexers.values()), {}
        await asyncio.gather(*(m.aclose() for m in muxes), return_exceptions=True)
        await super().aclose()

    def __repr__(self) -> str:
        nodes = sorted(self._multiplexers)
        return f"<{type(self).__name__} {self.connection_name!r} shared connections to {nodes}>"
