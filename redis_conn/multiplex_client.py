"""The asyncio client of a MULTIPLEX connection: redis-py's client, on a shared connection.

:class:`MultiplexedRedis` is a ``redis.asyncio.Redis`` with its whole command API. Commands
that every task may share go through the connection's :class:`~redis_conn.multiplex.Multiplexer`;
the ones that would hold or change the shared connection go where redis-py sends them, to a
dedicated connection from the connection's pool (MAX_CONNECTIONS, BLOCKING, POOL_TIMEOUT):

- blocking commands: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN, BZPOPMAX, BZMPOP, BLMPOP,
  WAIT, WAITAOF, and XREAD/XREADGROUP with BLOCK;
- connection state: MULTI/EXEC/WATCH..., (P|S)SUBSCRIBE, MONITOR, SELECT, AUTH, HELLO, CLIENT
  REPLY/TRACKING/SETNAME..., and SCRIPT/FUNCTION KILL (the shared connection may be the one
  waiting for the script);
- ``pubsub()``, ``monitor()``, ``client()``, and pipelines that WATCH or load scripts.

A plain pipeline, a transaction without WATCH, and a batch of :mod:`redis_conn.async_pipeline`
go out as one contiguous write on the shared connection, through a :class:`Channel`: a
connection-like view of the shared connection that redis-py's own pipeline code packs, sends
and reads through.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from enum import Enum
from typing import Any

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from redis_conn import messages
from redis_conn.config import ConnectionSpec
from redis_conn.exceptions import ReplyNotUnderstood
from redis_conn.internals import NEVER_DECODE, run_pipeline_batch
from redis_conn.multiplex import Batch, Multiplexer
from redis_conn.named_clients import AsyncNamedPipeline, AsyncNamedRedis
from redis_conn.read_only import batch_label, command_name

__all__ = [
    "Channel",
    "MultiplexedPipeline",
    "MultiplexedRedis",
    "multiplexed_client",
    "needs_dedicated",
]

_BLOCKING = frozenset(
    {
        "BLPOP",
        "BRPOP",
        "BLMOVE",
        "BRPOPLPUSH",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
        "BLMPOP",
        "WAIT",
        "WAITAOF",
    }
)
_BLOCKING_WITH_OPTION = frozenset({"XREAD", "XREADGROUP"})  # with BLOCK among the arguments
_CONNECTION_STATE = frozenset(
    {
        "MULTI",
        "EXEC",
        "DISCARD",
        "WATCH",
        "UNWATCH",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "UNSUBSCRIBE",
        "PUNSUBSCRIBE",
        "SUNSUBSCRIBE",
        "MONITOR",
        "SELECT",
        "AUTH",
        "HELLO",
        "RESET",
        "QUIT",
        "READONLY",
        "READWRITE",
        "SYNC",
        "PSYNC",
        "SHUTDOWN",
        "CLIENT REPLY",
        "CLIENT TRACKING",
        "CLIENT CACHING",
        "CLIENT SETNAME",
        "CLIENT SETINFO",
        "CLIENT NO-EVICT",
        "CLIENT NO-TOUCH",
        "SCRIPT KILL",
        "FUNCTION KILL",
    }
)
_WITH_SUBCOMMAND = frozenset({"CLIENT", "SCRIPT", "FUNCTION"})


class Route(Enum):
    """Where a command goes, decided from its name alone (and cached by name)."""

    SHARED = "shared"  # the shared connection
    DEDICATED = "dedicated"  # a connection of the pool, as redis-py sends it
    IF_BLOCK = "if BLOCK"  # dedicated only with a BLOCK argument (XREAD, XREADGROUP)
    BY_SUBCOMMAND = "by subcommand"  # decided by the name and its first argument (CLIENT ...)


_routes: dict[Any, Route] = {}  # command name as given -> route (a few dozen names at most)
_MAX_ROUTES = 1024


def _upper(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", "replace")
    return str(value).upper()


def _route(name: Any) -> Route:
    text = " ".join(_upper(name).split())
    if text in _BLOCKING or text in _CONNECTION_STATE or text.startswith("HIMPORT"):
        return Route.DEDICATED
    if text in _BLOCKING_WITH_OPTION:
        return Route.IF_BLOCK
    if text in _WITH_SUBCOMMAND:
        return Route.BY_SUBCOMMAND
    return Route.SHARED


def needs_dedicated(args: tuple[Any, ...]) -> bool:
    """Whether a command must not go on the shared connection (it blocks or changes it)."""
    name = args[0]
    try:
        route = _routes.get(name)
    except TypeError:  # an unhashable name (memoryview)
        route = None
    if route is None:
        route = _route(name)
        if len(_routes) < _MAX_ROUTES and isinstance(name, str | bytes):
            _routes[name] = route
    if route is Route.SHARED:
        return False
    if route is Route.DEDICATED:
        return True
    if route is Route.IF_BLOCK:
        return any(
            isinstance(arg, str | bytes) and len(arg) == 5 and _upper(arg) == "BLOCK"
            for arg in args[1:]
        )
    return len(args) > 1 and _route(f"{_upper(name)} {_upper(args[1])}") is Route.DEDICATED


_redis_py_parse_response = redis.asyncio.Redis.parse_response


class MultiplexedRedis(AsyncNamedRedis):
    """``redis.asyncio.Redis`` whose shareable commands ride one connection per event loop."""

    #: None on the clients redis-py derives from this one (``client()``): they are pooled.
    multiplexer: Multiplexer | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        mux = self.multiplexer
        if mux is None or self.single_connection_client or needs_dedicated(args):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        # The slot stands in for a connection: redis-py's parse_response reads the reply from
        # it and applies the response callback. Called directly (not through our own
        # parse_response, one coroutine less per command), with the same rule: once the
        # command is written, a failure inside the client is an unknown outcome.
        slot = mux.send(args, NEVER_DECODE in options)
        try:
            return await _redis_py_parse_response(self, slot, args[0], **options)  # type: ignore[arg-type]
        except RedisError:
            raise
        except Exception as exc:
            raise ReplyNotUnderstood(mux.name, command_name(args), exc) from exc

    def pipeline(
        self, transaction: bool = True, shard_hint: str | None = None
    ) -> MultiplexedPipeline:
        pipe = MultiplexedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.multiplexer = self.multiplexer
        return pipe

    def batch_client(
        self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]], *, transaction: bool
    ) -> Any:
        """What :mod:`redis_conn.async_pipeline` sends one batch through.

        Itself (pooled) when a command of the batch needs a dedicated connection; else a view
        with this client's parsing and a "pool" that lends one channel of the shared
        connection.
        """
        mux = self.multiplexer
        if mux is None or any(needs_dedicated(args) for args, _ in commands):
            return self
        raw = None if transaction else [NEVER_DECODE in options for _, options in commands]
        kind = "transaction" if transaction else "pipeline"
        channel = Channel(mux, raw, batch_label(kind, len(commands)))
        return _SharedBatch(self, channel)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self.multiplexer is not None:
            await self.multiplexer.aclose()
        await super().aclose(close_connection_pool)

    def __repr__(self) -> str:
        return f"<MultiplexedRedis {self.multiplexer!r} pool={self.connection_pool!r}>"


class MultiplexedPipeline(AsyncNamedPipeline):
    """redis-py's asyncio pipeline; without WATCH or scripts it runs on the shared connection.

    redis-py's own ``_execute_pipeline``/``_execute_transaction`` do the packing and reading,
    through a :class:`~redis_conn.multiplex.Channel` instead of a pooled connection. The batch
    is sent once: never retried, since what was written may have run.
    """

    multiplexer: Multiplexer | None = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        mux, stack = self.multiplexer, self.command_stack
        if (
            mux is None
            or self.watching
            or self.connection is not None
            or self.scripts
            or any(needs_dedicated(args) for args, _ in stack)
        ):
            return await super().execute(raise_on_error)
        if not stack:
            return []
        transaction = self.is_transaction or self.explicit_transaction
        raw = None if transaction else [NEVER_DECODE in options for _, options in stack]
        kind = "transaction" if transaction else "pipeline"
        channel = Channel(mux, raw, batch_label(kind, len(stack)))
        cache = self.client_cache
        sent = [args for args, _ in stack] if cache is not None else []
        try:
            return await run_pipeline_batch(
                self, channel, stack, raise_on_error, transaction=transaction
            )
        except BaseException as exc:
            channel.abandon()  # replies not read yet are read and dropped
            if isinstance(exc, Exception) and not isinstance(exc, RedisError):
                raise ReplyNotUnderstood(mux.name, channel.label, exc) from exc
            raise
        finally:
            if cache is not None:  # CLIENT_CACHE: the batch's writes drop local copies
                cache.wrote_all(sent)
            await self.reset()  # type: ignore[no-untyped-call]


class Channel:
    """A connection-like view of the shared connection, for one batch (a pipeline).

    redis-py's pipeline code and :mod:`redis_conn.async_pipeline` pack, send and read through
    it exactly as through a pooled connection. ``raw`` says, per command of the next send,
    whether its reply is read undecoded (``NEVER_DECODE``): the reader reads ahead of the
    batch's owner, so it must know before. ``disconnect()`` (what a pipeline interrupted
    while reading calls) abandons the batch: its replies are still read, and dropped; it never
    closes the shared socket.
    """

    def __init__(self, multiplexer: Multiplexer, raw: list[bool] | None, label: str) -> None:
        self._mux = multiplexer
        self._raw = raw
        self.label = label
        self._packed = 0
        self._slots: deque[Any] = deque()  # the replies owed to this channel, in order
        self._batches: list[Batch] = []

    def pack_command(self, *args: Any) -> Any:
        self._packed = 1
        return self._mux.pack(args)

    def pack_commands(self, commands: Iterable[Any]) -> Any:
        commands = list(commands)
        self._packed = len(commands)
        pack = self._mux.pack
        return [chunk for args in commands for chunk in pack(tuple(args))]

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        count, self._packed = self._packed, 0
        if count == 0:  # the replies could not be counted: sending would desynchronise
            raise RuntimeError(
                "A Channel sends only what its pack_command(s) packed, right after packing."
            )
        raw = self._raw if self._raw is not None and len(self._raw) == count else None
        self._raw = None
        batch = self._mux.send_batch(command, count, raw, self.label)
        self._batches.append(batch)
        self._slots.extend(batch.slots)

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        await self.send_packed_command(self.pack_command(*args))

    async def read_response(self, disable_decoding: bool = False, **_: Any) -> Any:
        if not self._slots:
            raise RedisConnectionError(
                f"{messages.prefix(self._mux.name)}a reply was read that was never asked "
                "for on the shared connection."
            )
        return await self._slots.popleft().read_response()

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self.abandon()

    def __getattr__(self, name: str) -> Any:
        # What redis-py reads from a connection beyond the methods above (``_resp2_fallback``
        # in 8.2, and whatever a later release reads) comes from the real shared connection.
        if name.startswith("__") or name == "_mux":  # no protocols, no recursion before __init__
            raise AttributeError(name)
        return getattr(self._mux.packer(), name)

    def abandon(self) -> None:
        """Drop the replies still owed to this batch (unsent: it is not sent at all)."""
        for batch in self._batches:
            batch.abandon()
        self._slots.clear()


class _ChannelLease:
    """Lends one channel, as a pool lends a connection; nothing to give back."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def get_connection(self, *args: Any, **kwargs: Any) -> Channel:
        return self._channel

    async def release(self, connection: Any) -> None:
        return None


class _SharedBatch:
    """A client's parsing and callbacks, with a channel of its shared connection as pool."""

    def __init__(self, client: MultiplexedRedis, channel: Channel) -> None:
        self.connection_pool = _ChannelLease(channel)
        self.parse_response = client.parse_response
        self.response_callbacks = client.response_callbacks


def multiplexed_client(
    pool: Any, spec: ConnectionSpec, client_class: type[MultiplexedRedis] | None = None
) -> MultiplexedRedis:
    """The client of a MULTIPLEX connection, over the pool its dedicated connections come from."""
    client = (client_class or MultiplexedRedis)(connection_pool=pool)
    client.auto_close_connection_pool = True  # as from_pool(): closing the client closes the pool
    client.multiplexer = Multiplexer(pool, spec)
    return client
