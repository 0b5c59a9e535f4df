"""The pooled asyncio cluster's nodes: BLOCKING per node, and nothing written sent twice.

redis-py's asyncio ``ClusterNode`` lends its connections itself, with no pool class to plug in:
a full node raises at once, and a connection error on one command makes its retry loop send
the command again. :class:`GatedClusterNode` (each node of our pooled asyncio cluster) adds:

- **A gate per node** (:class:`NodeGate`, per event loop like the client): MAX_CONNECTIONS
  permits, one per connection the node lends. A task that finds none waits in arrival order
  (FIFO) up to POOL_TIMEOUT with ``BLOCKING``, or fails at once without it; either way with the
  standalone pools' :class:`~redis_conn.exceptions.PoolExhausted`. Commands and pipelines wait
  inside the node's own ``execute_command`` / ``execute_pipeline``; a transaction's connection,
  which redis-py takes without awaiting, is paid for beforehand by :func:`prepaid` (the node of
  its first key) and otherwise taken only when free. A permit is given back however the call
  ends (a cancellation included), and a waiter cancelled takes none.
- **A lost reply stays lost.** When a node call that wrote a command that is not read-only (or
  a batch holding one) fails with one of the network errors redis-py retries, it becomes
  :class:`~redis_conn.exceptions.ConnectionLostAfterWrite` (or ``TimeoutAfterWrite``), which
  redis-py does not retry. The node call counts its own writes
  (:func:`~redis_conn.cluster.node_writes`): redis-py 7.4 and 8.1 close the connections of a
  node that failed while other tasks still use them, which wipes what a connection knew it
  had written; the count of the call survives that.
- **A connection is not lent while it closes.** redis-py 7.4 and 8.1 close a failed node's idle
  connections while leaving them idle: another task takes one half closed, and its write is
  lost or its read fails inside redis-py (AttributeError). Here they leave the idle list while
  they close, as redis-py 8.2 does. A connection lent back owing replies (an interrupted
  command) is reconnected before its next use; one redis-py 7.4 forgets to take back after a
  failed write is taken back here.

Everything of redis-py's this touches beyond its public methods goes through
:mod:`redis_conn.internals`.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import redis.asyncio.cluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn.cluster import node_writes
from redis_conn.exceptions import ConnectionLostAfterWrite, PoolExhausted, TimeoutAfterWrite
from redis_conn.guarded import unfit_to_lend
from redis_conn.internals import cluster_nodes, free_connections, node_connections
from redis_conn.masking import mask_text
from redis_conn.messages import unprefixed
from redis_conn.pools import PoolObserver, PoolUsage, behaviour_name
from redis_conn.read_only import all_resendable, command_name, may_resend

__all__ = [
    "GatedClusterNode",
    "NodeGate",
    "NodeGates",
    "gate_nodes",
    "node_gates_of",
    "node_usages",
    "prepaid",
]

# The errors redis-py's cluster retries (by exact type): after a write they must not pass.
_RETRIED = (RedisConnectionError, RedisTimeoutError)
# While a permit is held but redis-py has no connection to give (one still closing in the
# background after a failure), look again this often, up to POOL_TIMEOUT.
_CLOSING_POLL = 0.005


class NodeGate:
    """The permits of one node's connections: FIFO, safe to cancel."""

    def __init__(self, gates: NodeGates) -> None:
        self._gates = gates
        self._permits = gates.max_connections
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.held: set[int] = set()  # connections lent outside a gated call (transactions)

    @property
    def waiting(self) -> int:
        """How many tasks wait for a permit now."""
        return len(self._waiters)  # a waiter leaves the line as it is served or gives up

    @property
    def available(self) -> int:
        """How many permits are free now."""
        return self._permits

    def take_now(self) -> bool:
        """A permit, if one is free and nobody waits for it before us."""
        if self._permits > 0 and not self._waiters:
            self._permits -= 1
            return True
        return False

    async def take(self) -> None:
        """A permit: at once, after waiting in line up to POOL_TIMEOUT (BLOCKING), or
        :class:`PoolExhausted`. The wait (or the failure) is told to the gates' observer."""
        gates = self._gates
        observer = gates.observer
        if self.take_now():
            if observer is not None:
                observer.waited(0.0)
            return
        if not gates.blocking:
            raise gates.exhausted(waited=None)
        started = time.monotonic()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait((waiter,), timeout=gates.pool_timeout)
        except BaseException:
            self._abandon(waiter)
            raise
        if not waiter.done():
            self._abandon(waiter)
            raise gates.exhausted(waited=gates.pool_timeout)
        if observer is not None:
            observer.waited(time.monotonic() - started)

    def _abandon(self, waiter: asyncio.Future[None]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.done() and not waiter.cancelled():
            self.give()  # granted just as it gave up: the permit goes on to the next
        else:
            waiter.cancel()

    def give(self) -> None:
        """A permit back: to the first waiter still waiting, or to the free ones. Never
        suspends, so a cancellation cannot land halfway."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._permits += 1


class NodeGates:
    """The gates of one client's nodes (the client, like them, belongs to one event loop),
    by node name: a node redis-py makes anew for the same address keeps its gate."""

    def __init__(
        self, connection_name: str, *, max_connections: int, blocking: bool, pool_timeout: float
    ) -> None:
        self.connection_name = connection_name
        self.max_connections = max_connections
        self.blocking = blocking
        self.pool_timeout = pool_timeout
        #: Told every permit's wait and every PoolExhausted, as a pool tells its own (metrics).
        self.observer: PoolObserver | None = None
        self._gates: dict[str, NodeGate] = {}
        self.node_class: type[GatedClusterNode] = type(
            "GatedClusterNode", (GatedClusterNode,), {"__slots__": (), "gates": self}
        )

    def of(self, node: Any) -> NodeGate:
        gate = self._gates.get(node.name)
        if gate is None:
            gate = self._gates[node.name] = NodeGate(self)
        return gate

    def waiting_at(self, node: Any) -> int:
        """How many tasks wait for a permit of ``node`` now (a report: makes no gate)."""
        gate = self._gates.get(node.name)
        return gate.waiting if gate is not None else 0

    def exhausted(self, *, waited: float | None) -> PoolExhausted:
        if self.observer is not None:
            self.observer.timed_out()
        return PoolExhausted(self.connection_name, self.max_connections, waited=waited)


class _Lease:
    """A gated call's permit, and the connection redis-py lent it."""

    __slots__ = ("connection", "gate", "returned")

    def __init__(self, gate: NodeGate) -> None:
        self.gate = gate
        self.connection: Any = None
        self.returned = False


_LEASE: ContextVar[_Lease | None] = ContextVar("redis_conn_cluster_lease", default=None)
# A permit taken before a call that takes its connection without awaiting (a transaction).
_PREPAID: ContextVar[_Lease | None] = ContextVar("redis_conn_cluster_prepaid", default=None)


class GatedClusterNode(redis.asyncio.cluster.ClusterNode):
    """redis-py's asyncio ``ClusterNode`` behind a :class:`NodeGate` (see the module).

    redis-py makes its nodes itself; :func:`gate_nodes` re-classes them (no state of our own
    on the node: its gate is found through the client's :class:`NodeGates`, a class attribute
    of the per-client subclass)."""

    __slots__ = ()
    gates: NodeGates

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        call = super().execute_command
        with node_writes() as tally:
            try:
                return await self._gated(lambda: call(*args, **kwargs))
            except _RETRIED as exc:
                unsafe = tally.sent > 0 and not may_resend(args)
                error = self._lost(exc, command_name(args), unsafe)
                if error is exc:
                    raise
                raise error from exc

    async def execute_pipeline(self, commands: list[Any]) -> bool:
        call = super().execute_pipeline
        what = f"a batch of {len(commands)} commands"
        unsafe = not all_resendable(command.args for command in commands)
        with node_writes() as tally:
            try:
                failed: bool = await self._gated(lambda: call(commands))
            except Exception as exc:
                # Raised, redis-py would send the whole pipeline again (every node's part:
                # redis-py 7.4 and 8.1 even close the client first). Once written, or with
                # no connection to write on, the error is each command's outcome instead.
                if not tally.sent and not isinstance(exc, MaxConnectionsError):
                    raise  # nothing was written (a refused connect): redis-py routes again
                error = self._lost(exc, what, unsafe)
                for command in commands:
                    command.result = error
                return True
        if tally.sent:
            for command in commands:
                result = getattr(command, "result", None)
                if isinstance(result, Exception) and type(result) in _RETRIED:
                    command.result = self._lost(result, what, unsafe)
        return failed

    def _lost(self, exc: Exception, what: str, after_write: bool) -> Exception:
        """``exc``, or after a write of something not read-only, the error redis-py does not
        retry."""
        if not after_write or type(exc) not in _RETRIED:
            return exc
        name = self.gates.connection_name
        detail = mask_text(unprefixed(name, str(exc.args[0]) if exc.args else type(exc).__name__))
        if isinstance(exc, RedisTimeoutError):
            return TimeoutAfterWrite(name, what, f"no reply in time ({detail})")
        return ConnectionLostAfterWrite(name, what, f"the connection was lost ({detail})")

    async def _gated(self, call: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        gate = self.gates.of(self)
        await gate.take()
        lease = _Lease(gate)
        token = _LEASE.set(lease)
        try:
            return await self._call_with_connection(call, lease)
        finally:
            _LEASE.reset(token)
            try:
                await self._take_back(lease)
            finally:
                gate.give()

    async def _call_with_connection(
        self, call: Callable[[], Coroutine[Any, Any, Any]], lease: _Lease
    ) -> Any:
        """``call``, again while redis-py has no connection to lend though a permit is held:
        its connections still closing after a node failure come back shortly."""
        deadline = time.monotonic() + self.gates.pool_timeout
        while True:
            try:
                return await call()
            except MaxConnectionsError as exc:
                if lease.connection is not None or isinstance(exc, PoolExhausted):
                    raise
                if not self.gates.blocking or time.monotonic() >= deadline:
                    waited = self.gates.pool_timeout if self.gates.blocking else None
                    raise self.gates.exhausted(waited=waited) from exc
            await asyncio.sleep(_CLOSING_POLL)

    async def _take_back(self, lease: _Lease) -> None:
        """redis-py 7.4 does not take back a connection whose write failed: it would be lost
        to the node for good. Closed first (it may owe replies), then idle again."""
        connection = lease.connection
        if connection is None or lease.returned or connection in free_connections(self):
            return
        try:
            await connection.disconnect(nowait=True)
        finally:
            super().release(connection)

    def acquire_connection(self) -> Any:
        lease = _LEASE.get()
        gate = self.gates.of(self)
        if lease is not None and lease.gate is gate and lease.connection is None:
            lease.connection = self._fit(super().acquire_connection())
            return lease.connection
        # Outside a gated call (a transaction's connection): a permit of its own.
        prepaid = _PREPAID.get()
        if prepaid is not None and prepaid.gate is gate and prepaid.connection is None:
            prepaid.connection = True
        elif not gate.take_now():
            raise self.gates.exhausted(waited=None)
        try:
            connection = self._fit(super().acquire_connection())
        except BaseException:
            gate.give()
            raise
        gate.held.add(id(connection))
        return connection

    @staticmethod
    def _fit(connection: Any) -> Any:
        # Replies still owed (an interrupted command): redis-py reconnects it before use.
        if unfit_to_lend(connection):
            connection.mark_for_reconnect()
        return connection

    def release(self, connection: Any) -> None:
        lease = _LEASE.get()
        if lease is not None and lease.connection is connection:
            lease.returned = True
        super().release(connection)
        gate = self.gates.of(self)
        if id(connection) in gate.held:
            gate.held.discard(id(connection))
            gate.give()

    async def disconnect_free_connections(self) -> None:
        # Out of the idle list while they close, so that none is lent half closed.
        free = free_connections(self)
        closing = tuple(free)
        free.clear()
        try:
            await asyncio.gather(*(c.disconnect() for c in closing), return_exceptions=True)
        finally:
            free.extend(closing)


def gate_nodes(nodes: Iterable[Any], gates: NodeGates) -> None:
    """Make ``nodes`` (redis-py's, as it made them) gated nodes of ``gates``."""
    node_class = gates.node_class
    for node in nodes:
        if type(node) is not node_class and isinstance(node, redis.asyncio.cluster.ClusterNode):
            node.__class__ = node_class


@asynccontextmanager
async def prepaid(gates: NodeGates, node: Any) -> AsyncIterator[None]:
    """A permit of ``node`` waited for now, for a connection redis-py will take from it
    without awaiting (a transaction's); given back if it was not used."""
    gate = gates.of(node)
    await gate.take()
    lease = _Lease(gate)
    token = _PREPAID.set(lease)
    try:
        yield
    finally:
        _PREPAID.reset(token)
        if lease.connection is None:
            gate.give()


def node_gates_of(client: Any) -> NodeGates | None:
    """The node gates of an asyncio cluster client (pooled, or MULTIPLEX's dedicated
    connections), whose nodes lend their connections without a pool; None for any other."""
    gates = getattr(client, "node_gates", None)
    return gates if isinstance(gates, NodeGates) else None


def node_usages(client: Any) -> list[PoolUsage] | None:
    """What each node's connections are doing now, as a pool reports it (health, metrics):
    every connection the node holds, those lent, and the tasks waiting at its gate. None for
    a client without node gates."""
    gates = node_gates_of(client)
    if gates is None:
        return None
    behaves_like = behaviour_name(blocking=gates.blocking)
    usages = []
    for node in cluster_nodes(client):
        if not isinstance(node, GatedClusterNode):
            continue
        created = len(node_connections(node))
        usages.append(
            PoolUsage(
                behaves_like=behaves_like,
                max_connections=gates.max_connections,
                created=created,
                in_use=created - len(free_connections(node)),
                waiting=gates.waiting_at(node),
            )
        )
    return usages
