"""One shared connection per backend per event loop, for asyncio clients of MULTIPLEX connections.

Every task of a loop hands its command to the :class:`Multiplexer`: the command is packed by
redis-py (``pack_command``), queued, and written with everything else queued in the same loop
iteration in one socket write. One reader task reads the replies in order with redis-py's own
``read_response`` (hiredis when installed, which parses everything a socket read brought in
before the next read) and settles each waiting future. Callers then run redis-py's
``parse_response`` on their reply, so response callbacks and ``decode_responses`` are redis-py's.

The handshake (AUTH, HELLO, SELECT, CLIENT SETNAME) is redis-py's: each connection is made by the
connection's pool (``make_connection``) and connected with ``connect()``, whose connect errors
are retried per RETRY. After the handshake the socket timeout moves here: one timer per
connection instead of one per read.

Exactly once (CONTRACT sections 6 and 8):

- a command cancelled before it was written is never written; one cancelled after is read and
  its reply dropped, so the connection never desynchronises;
- a lost connection fails every command in flight: a write with
  :class:`~redis_conn.exceptions.ConnectionLostAfterWrite`, never re-sent; a read-only command
  (:func:`redis_conn.read_only.may_resend`) is re-sent once when RETRY allows;
- a reply later than SOCKET_TIMEOUT fails the commands in flight (a write with
  :class:`~redis_conn.exceptions.TimeoutAfterWrite`) and closes the connection;
- the next command reconnects, on a new connection object, so nothing late from the old
  socket can reach the new one. Behind Sentinel the new connection asks for the primary again.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn import messages
from redis_conn.config import ConnectionSpec
from redis_conn.exceptions import ConnectionLostAfterWrite, OutcomeUnknown, TimeoutAfterWrite
from redis_conn.guarded import numbers_as_text
from redis_conn.internals import has_data, hiredis_packer
from redis_conn.read_only import command_name, may_resend

__all__ = ["Batch", "MultiplexUsage", "Multiplexer", "usage", "usage_by_node"]


def _reason(exc: BaseException, name: str) -> str:
    """A network error's own words, without the "Redis connection 'x': " prefix it may carry
    (nor the guarded connection's own "may or may not have run" wrapping)."""
    if isinstance(exc, OutcomeUnknown) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = messages.unprefixed(name, str(exc)).rstrip(".")
    return text or type(exc).__name__


class _Slot:
    """One reply owed by the server, and the future of whoever waits for it.

    The future's result is the reply, or the exception the waiter raises (an error reply or a
    failure); never ``set_exception``, so a reply nobody waits for any more logs nothing.
    A slot is also what redis-py's ``parse_response`` reads from: ``read_response`` below.
    Whatever else redis-py reads from "its connection" (``_resp2_fallback`` in 8.2, whatever a
    later release reads) comes from the real connection the slot's reply travels on, so a new
    attribute read by redis-py cannot break the multiplexer.
    """

    __slots__ = ("args", "data", "future", "label", "mux", "raw", "retried")

    def __init__(
        self,
        mux: Multiplexer,
        future: asyncio.Future[Any],
        args: tuple[Any, ...] | None,
        data: Any,
        raw: bool,
    ) -> None:
        self.mux = mux
        self.future = future
        self.args = args  # None for a reply of a batch (a Channel's)
        self.data = data  # the packed command (kept: a read-only one may be re-sent once)
        self.raw = raw  # read with disable_decoding
        self.retried = False
        self.label = ""  # a batch's description, for errors

    async def read_response(self, disable_decoding: bool = False, **_: Any) -> Any:
        reply = await self.future
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def __getattr__(self, name: str) -> Any:
        # Only for what the slot does not define itself: the real connection answers.
        if name.startswith("__") or name == "mux":  # no protocols, no recursion before __init__
            raise AttributeError(name)
        return getattr(self.mux.packer(), name)


class Batch:
    """Commands sent as one contiguous write; their replies are consecutive slots.

    Each slot's ``read_response()`` returns (or raises) its reply, in order.
    """

    __slots__ = ("abandoned", "data", "slots")

    def __init__(self, data: Any, slots: list[_Slot]) -> None:
        self.data = data
        self.slots = slots
        self.abandoned = False

    def abandon(self) -> None:
        """Nobody will read the replies still owed: not written yet, it is never written;
        written, its replies are read and dropped."""
        self.abandoned = True
        for slot in self.slots:
            slot.future.cancel()


@dataclass(frozen=True)
class MultiplexUsage:
    """The shared connections of one connection spec in this process (every event loop)."""

    event_loops: int
    connected: int
    in_flight: int
    reconnects: int


_live: weakref.WeakSet[Multiplexer] = weakref.WeakSet()


def usage(spec: ConnectionSpec) -> MultiplexUsage:
    """What the multiplexers built from ``spec`` (this very object) are doing now."""
    found = [m for m in list(_live) if m.spec is spec]
    return _summed(found)


def _summed(found: list[Multiplexer]) -> MultiplexUsage:
    # A cluster connection has a multiplexer per node on each loop: count the loops.
    return MultiplexUsage(
        event_loops=len({id(m._loop or m) for m in found}),
        connected=sum(1 for m in found if m.connected),
        in_flight=sum(m.in_flight for m in found),
        reconnects=sum(m.reconnects for m in found),
    )


def usage_by_node(spec: ConnectionSpec) -> dict[str, MultiplexUsage]:
    """For a cluster connection: what the multiplexers of each node (``host:port``) do now."""
    nodes: dict[str, list[Multiplexer]] = {}
    for m in list(_live):
        if m.spec is spec and m.node is not None:
            nodes.setdefault(m.node, []).append(m)
    return {node: _summed(found) for node, found in nodes.items()}


class Multiplexer:
    """The shared connection of one backend on one event loop: a writer, a reader, a queue."""

    def __init__(self, pool: Any, spec: ConnectionSpec, *, node: str | None = None) -> None:
        self.spec = spec
        self.name = spec.root
        self.node = node  # a cluster node's host:port; None for a standalone or Sentinel backend
        self._where = f" to node {node}" if node else ""
        self._pool = pool
        self._timeout = spec.socket_timeout
        self._resend_reads = spec.retry > 0
        self._health_interval = spec.health_check_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Any = None  # the redis-py connection of the current socket
        self._spare: Any = None  # a connection object for packing before the first connect
        # redis-py's hiredis packer (its sync connections' default) writes the same bytes as
        # the asyncio connection's pure-Python one in half the time, for strict UTF-8 text.
        kwargs = pool.connection_kwargs
        encoding = str(kwargs.get("encoding", "utf-8")).lower().replace("_", "-")
        self._fast_pack = (
            hiredis_packer()
            if encoding in ("utf-8", "utf8") and kwargs.get("encoding_errors", "strict") == "strict"
            else None
        )
        self._connected = False
        self._generation = 0  # changes on every connect and every loss: stale work stops
        self._pending: deque[_Slot | Batch] = deque()  # queued, not written yet
        self._inflight: deque[_Slot] = deque()  # written, reply not read yet
        self._writer: asyncio.Task[None] | None = None
        self._writer_wake: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._reader_wake: asyncio.Future[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._progress = 0.0  # loop time of the last reply (or of the first write after idle)
        self._closing: set[asyncio.Task[Any]] = set()
        self._shutting = False
        self.connects = 0
        _live.add(self)

    # -- what the health report reads ------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def in_flight(self) -> int:
        """Commands handed to the multiplexer whose replies have not been read yet."""
        queued = sum(len(i.slots) if isinstance(i, Batch) else 1 for i in self._pending)
        return queued + len(self._inflight)

    @property
    def reconnects(self) -> int:
        return max(self.connects - 1, 0)

    # -- sending ---------------------------------------------------------------------------

    def packer(self) -> Any:
        """A redis-py connection object, for its ``pack_command(s)`` and encoder."""
        conn = self._conn or self._spare
        if conn is None:
            conn = self._spare = self._new_connection()
        return conn

    def pack(self, args: tuple[Any, ...]) -> Any:
        fast = self._fast_pack
        if fast is not None:
            try:
                # Numbers as text first, as the guarded connections do: hiredis formats them
                # without checking for an exception, and one from a signal handler crashes it.
                return fast(*numbers_as_text(args))
            except DataError:  # not a plain str/bytes/int/float: the encoder decides, or says why
                pass
        return self.packer().pack_command(*args)

    def send(self, args: tuple[Any, ...], raw: bool) -> _Slot:
        """Queue one command; the returned slot is what redis-py's parse_response reads."""
        loop = self._running_loop()
        slot = _Slot(self, loop.create_future(), args, self.pack(args), raw)
        self._pending.append(slot)
        self._wake_writer()
        return slot

    def send_batch(self, data: Any, count: int, raw: list[bool] | None, label: str) -> Batch:
        """Queue an already packed batch of ``count`` commands, to go out in one piece."""
        loop = self._running_loop()
        slots = [
            _Slot(self, loop.create_future(), None, None, bool(raw[i]) if raw else False)
            for i in range(count)
        ]
        for slot in slots:
            slot.label = label
        batch = Batch(data, slots)
        self._pending.append(batch)
        self._wake_writer()
        return batch

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                raise RuntimeError(
                    f"{messages.prefix(self.name)}this multiplexed client belongs to "
                    f"another event loop; call get_async_redis({self.name!r}) in this one."
                )
            self._loop = loop
        return loop

    def _wake_writer(self) -> None:
        if self._shutting:
            return
        wake = self._writer_wake
        if wake is not None:
            self._writer_wake = None
            if not wake.done():
                wake.set_result(None)
        elif self._writer is None:
            assert self._loop is not None
            self._writer = self._loop.create_task(
                self._write_loop(), name=f"redis_conn multiplex writer {self.name!r}"
            )

    # -- the writer ------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        pending, inflight = self._pending, self._inflight
        try:
            while True:
                if not pending:
                    self._writer_wake = wake = loop.create_future()
                    await wake
                    continue
                if not self._connected:
                    try:
                        await self._connect()
                    except Exception as exc:  # never sent: each waiter gets the connect error
                        self._fail_pending(exc)
                    continue
                if not inflight and not await self._ready_after_idle():
                    continue
                # Nothing awaits from here to the write: no loss can slip in between.
                chunks: list[Any] = []
                was_idle = not inflight
                while pending:
                    item = pending.popleft()
                    if isinstance(item, _Slot):
                        if item.future.done():  # cancelled before it was written: never sent
                            continue
                        chunks.extend(item.data)
                        inflight.append(item)
                    elif not item.abandoned:
                        chunks.extend(item.data)
                        inflight.extend(item.slots)
                if not chunks:
                    continue
                if was_idle:
                    self._progress = loop.time()
                    self._arm_deadline()
                    wake_reader = self._reader_wake
                    if wake_reader is not None:
                        self._reader_wake = None
                        wake_reader.set_result(None)
                generation, conn = self._generation, self._conn
                try:
                    await conn.send_packed_command(chunks, check_health=False)
                except Exception as exc:  # bytes may have left: what was written is in doubt
                    self._lost(exc, generation)
        except GeneratorExit:
            # The task was garbage collected unfinished: its loop was closed without
            # shutdown_asyncgens() (or dropped). Nothing may touch that loop now (a future's
            # callbacks or a transport's close would raise "Event loop is closed" in a
            # finalizer, an error nobody can catch); the socket goes with its transport.
            raise
        except BaseException as exc:  # closed, or a bug: nobody may wait forever
            if isinstance(exc, asyncio.CancelledError):
                exc = RedisConnectionError(
                    f"{messages.prefix(self.name)}the asyncio client was closed (or its "
                    "event loop ended) while the command waited."
                )
            conn, reader = self._shut(exc)
            await _quietly_disconnect(conn, wait=True)
            if reader is not None:
                reader.cancel()
            raise

    async def _connect(self) -> None:
        conn = self._spare or self._new_connection()
        self._spare = None
        try:
            await conn.connect()  # redis-py: handshake, RETRY on connect errors
        except BaseException:
            await _quietly_disconnect(conn)
            raise
        # Replies are timed here, one timer for the connection, not one per read.
        conn.socket_timeout = None
        self._conn = conn
        self._generation += 1
        self._connected = True
        self.connects += 1
        assert self._loop is not None
        self._progress = self._loop.time()
        self._reader = self._loop.create_task(
            self._read_loop(conn, self._generation),
            name=f"redis_conn multiplex reader {self.name!r}",
        )

    def _new_connection(self) -> Any:
        conn = self._pool.make_connection()
        conn.connection_name = self.name  # error messages name the connection
        return conn

    async def _ready_after_idle(self) -> bool:
        """Before writing on an idle connection: is it still usable? (False: reconnect.)

        Data or EOF on a socket that owes nothing means the server closed it; a connection
        idle for longer than HEALTH_CHECK_INTERVAL answers a PING first, as pooled ones do.
        """
        conn, generation = self._conn, self._generation
        assert self._loop is not None
        try:
            if await has_data(conn):
                raise RedisConnectionError("the idle connection was closed by the server")
            idle = self._loop.time() - self._progress
            if self._health_interval and idle > self._health_interval:
                async with asyncio.timeout(self._timeout):
                    await conn.send_command("PING", check_health=False)
                    await conn.read_response()
                self._progress = self._loop.time()
        except Exception as exc:
            self._lost(exc, generation)
            return False
        return generation == self._generation

    # -- the reader ------------------------------------------------------------------------

    async def _read_loop(self, conn: Any, generation: int) -> None:
        loop = asyncio.get_running_loop()
        inflight = self._inflight
        read = conn.read_response
        try:
            while generation == self._generation:
                if not inflight:
                    self._reader_wake = wake = loop.create_future()
                    await wake
                    continue
                slot = inflight[0]
                try:
                    reply = await read(disable_decoding=slot.raw)
                except ResponseError as exc:
                    reply = exc
                if generation != self._generation:  # the connection was given up meanwhile
                    return
                self._progress = loop.time()
                inflight.popleft()
                future = slot.future
                if not future.done():
                    future.set_result(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lost(exc, generation)

    # -- time limits -----------------------------------------------------------------------

    def _arm_deadline(self) -> None:
        if self._timeout is None or self._deadline is not None:
            return
        assert self._loop is not None
        self._deadline = self._loop.call_at(self._progress + self._timeout, self._check_deadline)

    def _check_deadline(self) -> None:
        self._deadline = None
        if not self._inflight or self._timeout is None:
            return
        assert self._loop is not None
        due = self._progress + self._timeout
        if self._loop.time() < due:
            self._deadline = self._loop.call_at(due, self._check_deadline)
            return
        error = RedisTimeoutError(
            f"{messages.prefix(self.name)}no reply within SOCKET_TIMEOUT="
            f"{self._timeout:g}s; the shared connection was closed."
        )
        self._lost(error, self._generation, timed_out=True)

    # -- failures --------------------------------------------------------------------------

    def _lost(
        self, exc: BaseException, generation: int, *, timed_out: bool = False, close: bool = True
    ) -> None:
        """The current connection is unusable: settle what it owed, close it, reconnect later."""
        if generation != self._generation or not self._connected:
            return  # already handled
        self._connected = False
        self._generation += 1
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        resend: list[_Slot] = []
        owed = list(self._inflight)
        self._inflight.clear()
        for slot in owed:
            if slot.future.done():
                continue
            if not timed_out and self._may_resend(slot):
                slot.retried = True
                resend.append(slot)
            else:
                slot.future.set_result(self._failure(slot, exc, timed_out))
        self._pending.extendleft(reversed(resend))
        reader, conn = self._reader, self._conn
        self._reader = self._reader_wake = None
        if close:
            if reader is not None and reader is not asyncio.current_task():
                reader.cancel()
            self._close_later(conn)
        if self._pending:
            self._wake_writer()

    def _may_resend(self, slot: _Slot) -> bool:
        return (
            slot.args is not None
            and not slot.retried
            and self._resend_reads
            and may_resend(slot.args)
        )

    def _failure(self, slot: _Slot, exc: BaseException, timed_out: bool) -> BaseException:
        name = self.name
        if slot.args is None:
            command, read_only = slot.label, False
        else:
            command, read_only = command_name(slot.args), may_resend(slot.args)
        error: BaseException
        if timed_out:
            detail = f"no reply{self._where} within SOCKET_TIMEOUT={self._timeout:g}s"
            if read_only:
                error = RedisTimeoutError(
                    f"{messages.prefix(name)}{detail} to {command}; the shared connection "
                    "was closed."
                )
            else:
                error = TimeoutAfterWrite(name, command, detail)
        else:
            detail = f"the shared connection{self._where} was lost ({_reason(exc, name)})"
            if read_only:
                error = RedisConnectionError(
                    f"{messages.prefix(name)}{detail} before the reply to {command} arrived."
                )
            else:
                error = ConnectionLostAfterWrite(name, command, detail)
        error.__cause__ = exc
        return error

    def _fail_pending(self, exc: BaseException) -> None:
        while self._pending:
            item = self._pending.popleft()
            for slot in item.slots if isinstance(item, Batch) else (item,):
                if not slot.future.done():
                    slot.future.set_result(exc)

    def _close_later(self, conn: Any) -> None:
        if conn is None or self._loop is None or self._loop.is_closed():
            return
        task = self._loop.create_task(_quietly_disconnect(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _shut(self, exc: BaseException) -> tuple[Any, asyncio.Task[None] | None]:
        """No more sending: every waiter, queued or in flight, gets ``exc``.

        Returns the connection and its reader for the caller to close, in this order: a
        closed socket ends the reader, and a TLS connection is closed only once its shutdown
        is through (a loop that ends first would leave the socket open).
        """
        reader = self._reader
        self._shutting = True
        self._writer = self._writer_wake = None
        if self._connected:
            self._lost(exc, self._generation, close=False)
        for slot in self._inflight:
            if not slot.future.done():
                slot.future.set_result(exc)
        self._inflight.clear()
        self._fail_pending(exc)
        self._shutting = False
        conn, self._conn = self._conn, None
        return conn, reader

    async def aclose(self) -> None:
        """Close the shared connection; commands still waiting fail, the next one reconnects
        (as a redis-py pool does after ``aclose()``)."""
        writer = self._writer
        closed = RedisConnectionError(
            f"{messages.prefix(self.name)}the asyncio client was closed while the command waited."
        )
        conn, reader = self._shut(closed)
        await _quietly_disconnect(conn, wait=True)
        for task in (writer, reader):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(
            *(t for t in (writer, reader) if t is not None), return_exceptions=True
        )
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        _live.discard(self)

    def __repr__(self) -> str:
        state = "connected" if self._connected else "idle"
        node = f" node={self.node}" if self.node else ""
        return f"<Multiplexer {self.name!r}{node} {state} in_flight={self.in_flight}>"


async def _quietly_disconnect(conn: Any, *, wait: bool = False) -> None:
    # Closing is best effort: the error worth reporting is the one that made us close.
    # ``wait``: until the socket is closed (TLS: shutdown done; bounded by the connect timeout).
    if conn is None:
        return
    with contextlib.suppress(Exception):
        await conn.disconnect(nowait=not wait)
