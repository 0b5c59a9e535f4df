"""Connections that know which replies they still owe, and whether a lost one may be re-sent.

Two jobs, both done where the bytes are written (CONTRACT section 6):

- **Never poison a pool.** A command interrupted after its bytes left (KeyboardInterrupt, an
  exception from a signal handler, a cancelled task) leaves its reply on the socket, and the
  next caller would read it. The count of replies owed goes up *before* the write and down
  *after* a reply is parsed, so an interruption anywhere leaves the count too high, never too
  low; a pool releasing a connection that still owes replies closes it.
- **Never crash on an interrupt.** hiredis's ``pack_command`` formats an ``int`` or ``float``
  argument with ``PyObject_Repr`` and does not check for failure; a signal handler that raises
  during that call (a job timeout) makes it return NULL and the interpreter segfaults. Numbers
  are turned into their text here first, in Python, where an interrupt is just an exception.
- **Never run a write twice.** When a connection is lost, or a reply times out, after a
  command that is not read-only (or a batch holding one) was written, the error becomes
  :class:`~redis_conn.exceptions.ConnectionLostAfterWrite` /
  :class:`~redis_conn.exceptions.TimeoutAfterWrite`, which no retry loop re-sends (our
  ``Retry`` refuses them, redis-py's cluster retries only the exact base classes). Failures
  before the write (connect, the idle-connection health PING) stay ordinary, retryable errors.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any

import redis.asyncio.connection as async_connection
import redis.asyncio.sentinel as async_sentinel
import redis.connection
import redis.sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn import messages
from redis_conn.exceptions import ConnectionLostAfterWrite, TimeoutAfterWrite
from redis_conn.internals import is_connected
from redis_conn.masking import mask_text
from redis_conn.naming import explain_refused_name
from redis_conn.read_only import all_resendable, command_name, may_resend
from redis_conn.session_state import CLEAN, QUIET, session_after

_NETWORK_ERRORS = (RedisConnectionError, RedisTimeoutError)
# Before Python 3.12, asyncio.wait_for (which redis-py sends under) can swallow a cancellation.
_WAIT_FOR_LOSES_CANCELLATIONS = sys.version_info < (3, 12)


def name_error(exc: BaseException, connection_name: str) -> None:
    """Prefix a network error's message with the connection it happened on (once), and mask
    any password in it (some redis-py versions put a connection's repr, password included,
    in the message of ``MasterNotFoundError``)."""
    if not exc.args:
        return
    message = str(exc.args[0])
    if connection_name:
        message = messages.prefixed(connection_name, message)
    exc.args = (mask_text(message), *exc.args[1:])


_NUMBERS = (int, float)


def numbers_as_text(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` with every ``int``/``float`` as its bytes, as both of redis-py's packers would
    write it (``repr``); other arguments, ``bool`` included, are left to the packer."""
    for arg in args:
        if type(arg) in _NUMBERS:
            return tuple(repr(a).encode() if type(a) in _NUMBERS else a for a in args)
    return args


# The replies a connection "owes" while its handshake runs (see connect()).
_CONNECTING = 1

Sent = tuple[int, bool, Any]  # replies a write will owe, whether it is unsafe, what it was


class ReplyAccounting:
    """Counts replies owed on one connection and remembers whether an unsafe write is pending.

    ``connection_name`` is set by the pool that makes the connection, so that every network
    error says which configured connection failed, not just host and port.
    """

    _replies_owed = 0
    _unsafe_written = False  # a non-read-only command whose reply is still owed was written
    _written: Any = None  # what that was: a command's first words, or a batch's size
    _next: Sent | None = None  # what the next send_packed_command carries (from the packing)
    _session = CLEAN  # what the commands sent since the handshake did to the session
    connection_name = ""

    @property
    def replies_owed(self) -> int:
        return self._replies_owed

    @property
    def session_changed(self) -> bool:
        """Whether a command left this connection in a state the next borrower must not
        inherit (CONTRACT section 10: SELECT, MULTI without EXEC, MONITOR, ...)."""
        return self._session != CLEAN

    def _note_command(self, args: tuple[Any, ...]) -> None:
        self._next = (1, not may_resend(args), args[:2])  # the name, never values
        try:
            quiet = args[0] in QUIET  # most commands: one set lookup on the per-command path
        except (TypeError, IndexError):  # an unhashable name (memoryview), or none
            quiet = False
        if not quiet:
            self._session = session_after(self._session, (args,))

    def _note_batch(self, batch: list[Any]) -> None:
        self._next = (len(batch), not all_resendable(batch), len(batch))
        self._session = session_after(self._session, batch)

    def _take_next(self) -> Sent:
        sent, self._next = self._next, None
        # Sent without our packing (raw bytes): assume one reply and a write.
        return sent if sent is not None else (1, True, None)

    def _count_written(self, sent: Sent) -> None:
        count, unsafe, what = sent
        if self._replies_owed <= 0:
            self._unsafe_written = False
        self._replies_owed += count
        if unsafe:
            self._unsafe_written, self._written = True, what

    def _count_read(self) -> None:
        owed = self._replies_owed - 1
        if owed <= 0:
            self._unsafe_written = False
            owed = 0
        self._replies_owed = owed

    def _forget_owed(self) -> None:
        # A new socket (or none): no reply owed, and the session is the handshake's.
        self._replies_owed = 0
        self._unsafe_written = False
        self._session = CLEAN

    def _named(self, exc: BaseException, unsafe: bool, written: Any) -> BaseException:
        """The error to raise for a network error: named, and after an unsafe write, the
        "may or may not have run" error that no retry loop re-sends."""
        # Only the socket's own failures; subclasses are server replies (a refused login,
        # LOADING) that say the command did not run.
        if not unsafe or type(exc) not in _NETWORK_ERRORS:
            name_error(exc, self.connection_name)
            return exc
        what = (
            f"a batch of {written} commands"
            if isinstance(written, int)
            else command_name(written or ())
        )
        detail = mask_text(str(exc.args[0]) if exc.args else type(exc).__name__)
        if isinstance(exc, RedisTimeoutError):
            return TimeoutAfterWrite(self.connection_name, what, f"no reply in time ({detail})")
        return ConnectionLostAfterWrite(
            self.connection_name, what, f"the connection was lost ({detail})"
        )


class _SyncGuard(ReplyAccounting):
    def connect(self) -> None:
        if not is_connected(self):  # redis-py's own check, without its retry wrapper's cost
            super().connect()  # type: ignore[misc]

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        if is_connected(self):
            return
        # Until the handshake is done the connection counts as owing a reply, so that one an
        # interrupt left half made (a socket, but no parser) is closed, never lent again.
        self._replies_owed = _CONNECTING
        try:
            super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except _NETWORK_ERRORS as exc:
            name_error(exc, self.connection_name)
            raise
        self._forget_owed()

    def pack_command(self, *args: Any) -> Any:
        self._note_command(args)
        return super().pack_command(*numbers_as_text(args))  # type: ignore[misc]

    def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().on_connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except ResponseError as exc:  # a proxy or an ACL refusing CLIENT SETNAME, say so
            explain_refused_name(exc, self.connection_name, getattr(self, "client_name", None))
            raise

    def pack_commands(self, commands: Iterable[Any]) -> Any:
        batch = [numbers_as_text(tuple(args)) for args in commands]
        packed = super().pack_commands(batch)  # type: ignore[misc]
        self._note_batch(batch)
        return packed

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        # redis-py's own send_command packs with its packer directly; ours packs safely.
        self.send_packed_command(
            self.pack_command(*args), check_health=kwargs.get("check_health", True)
        )

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        sent = self._take_next()
        # Connect and health-check first, as redis-py does (the handshake without a health
        # PING): a failure there is before our write, so it stays retryable.
        if not is_connected(self):
            self.connect_check_health(check_health=False)
        if check_health:
            self.check_health()  # type: ignore[attr-defined]
        self._count_written(sent)  # before the write: an interrupt can only over-count
        try:
            super().send_packed_command(command, False)  # type: ignore[misc]
        except _NETWORK_ERRORS as exc:
            raise self._named(exc, sent[1], sent[2]) from exc

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        unsafe, written = self._unsafe_written, self._written
        try:
            response = super().read_response(*args, **kwargs)  # type: ignore[misc]
        except ResponseError:
            self._count_read()  # an error reply is a reply
            raise
        except _NETWORK_ERRORS as exc:
            error = self._named(exc, unsafe, written)
            if error is exc:
                raise
            raise error from exc
        self._count_read()
        return response

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        super().disconnect(*args, **kwargs)  # type: ignore[misc]
        self._forget_owed()


class _AsyncGuard(ReplyAccounting):
    async def connect(self) -> None:
        if not self.is_connected:  # type: ignore[attr-defined]
            await super().connect()  # type: ignore[misc]

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        if self.is_connected:  # type: ignore[attr-defined]
            return
        self._replies_owed = _CONNECTING  # as in the sync guard
        try:
            await super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except _NETWORK_ERRORS as exc:
            name_error(exc, self.connection_name)
            raise
        self._forget_owed()

    def pack_command(self, *args: Any) -> Any:
        self._note_command(args)
        return super().pack_command(*numbers_as_text(args))  # type: ignore[misc]

    async def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().on_connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except ResponseError as exc:
            explain_refused_name(exc, self.connection_name, getattr(self, "client_name", None))
            raise

    def pack_commands(self, commands: Iterable[Any]) -> Any:
        batch = [numbers_as_text(tuple(args)) for args in commands]
        packed = super().pack_commands(batch)  # type: ignore[misc]  # may call pack_command
        self._note_batch(batch)
        return packed

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        sent = self._take_next()
        if not self.is_connected:  # type: ignore[attr-defined]
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()  # type: ignore[attr-defined]
        task = asyncio.current_task() if _WAIT_FOR_LOSES_CANCELLATIONS else None
        cancel_requests = task.cancelling() if task is not None else 0
        self._count_written(sent)
        try:
            await super().send_packed_command(command, False)  # type: ignore[misc]
        except _NETWORK_ERRORS as exc:
            raise self._named(exc, sent[1], sent[2]) from exc
        if task is not None and task.cancelling() > cancel_requests:
            # redis-py sends under asyncio.wait_for, which on Python 3.11 returns normally when
            # the task is cancelled just as the send completes: the cancellation is lost and a
            # cancelled request would go on to wait for its replies. Deliver it, and close the
            # socket as redis-py does when a send is interrupted: its replies go with it.
            await self.disconnect(nowait=True)
            raise asyncio.CancelledError

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        unsafe, written = self._unsafe_written, self._written
        try:
            response = await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except ResponseError:
            self._count_read()
            raise
        except _NETWORK_ERRORS as exc:
            error = self._named(exc, unsafe, written)
            if error is exc:
                raise
            raise error from exc
        self._count_read()
        return response

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        await super().disconnect(*args, **kwargs)  # type: ignore[misc]
        self._forget_owed()


class GuardedConnection(_SyncGuard, redis.connection.Connection):
    pass


class GuardedSSLConnection(_SyncGuard, redis.connection.SSLConnection):
    pass


class GuardedUnixConnection(_SyncGuard, redis.connection.UnixDomainSocketConnection):
    pass


class GuardedSentinelConnection(_SyncGuard, redis.sentinel.SentinelManagedConnection):
    pass


class GuardedSentinelSSLConnection(_SyncGuard, redis.sentinel.SentinelManagedSSLConnection):
    pass


class AsyncGuardedConnection(_AsyncGuard, async_connection.Connection):
    pass


class AsyncGuardedSSLConnection(_AsyncGuard, async_connection.SSLConnection):
    pass


class AsyncGuardedUnixConnection(_AsyncGuard, async_connection.UnixDomainSocketConnection):
    pass


class AsyncGuardedSentinelConnection(_AsyncGuard, async_sentinel.SentinelManagedConnection):
    pass


class AsyncGuardedSentinelSSLConnection(_AsyncGuard, async_sentinel.SentinelManagedSSLConnection):
    pass


def unfit_to_lend(connection: object) -> bool:
    """Whether a connection given back must be closed rather than lent again: it still owes
    replies (an interrupted command, a half-made handshake), or a command changed its session
    (CONTRACT sections 6 and 10)."""
    return isinstance(connection, ReplyAccounting) and (
        connection.replies_owed > 0 or connection.session_changed
    )


def sync_connection_class(scheme: str, *, sentinel: bool = False, ssl: bool = False) -> type[Any]:
    if sentinel:
        return GuardedSentinelSSLConnection if ssl else GuardedSentinelConnection
    if scheme == "unix":
        return GuardedUnixConnection
    return GuardedSSLConnection if scheme == "rediss" or ssl else GuardedConnection


def async_connection_class(scheme: str, *, sentinel: bool = False, ssl: bool = False) -> type[Any]:
    if sentinel:
        return AsyncGuardedSentinelSSLConnection if ssl else AsyncGuardedSentinelConnection
    if scheme == "unix":
        return AsyncGuardedUnixConnection
    return AsyncGuardedSSLConnection if scheme == "rediss" or ssl else AsyncGuardedConnection
