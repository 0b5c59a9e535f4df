"""Connections that know when replies are still owed to them.

redis-py 8 (RESP3, maintenance notifications on) skips its "connection has data" check when a
pool hands out a connection, so a pipeline interrupted between two replies (an exception in a
callback, KeyboardInterrupt, a cancelled task) can leave replies on a pooled socket and the
next command reads someone else's answer. These classes count replies owed; a pool releasing
a connection that still owes replies closes it, so the stale replies go with the socket.
(The check is at release, not at send: redis-py legitimately sends several commands before
reading, e.g. in on_connect and in pub/sub.)
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Sized
from typing import Any

import redis.asyncio.connection as async_connection
import redis.asyncio.sentinel as async_sentinel
import redis.connection
import redis.sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn.masking import mask_text
from redis_conn.naming import explain_refused_name

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
    prefix = f"Redis connection {connection_name!r}: "
    if connection_name and not message.startswith(prefix):
        message = prefix + message
    exc.args = (mask_text(message), *exc.args[1:])


class ReplyAccounting:
    """Counts commands sent and replies read on one connection, and knows its name.

    ``connection_name`` is set by the pool that makes the connection, so that every network
    error says which configured connection failed, not just host and port.
    """

    _replies_owed = 0
    _commands_packed = 0
    connection_name = ""

    @property
    def replies_owed(self) -> int:
        return self._replies_owed

    def _count_packed(self, commands: Iterable[Any]) -> Iterable[Any]:
        batch = commands if isinstance(commands, Sized) else list(commands)
        self._commands_packed = len(batch)
        return batch

    def _count_sent(self, single: bool) -> None:
        self._replies_owed += 1 if single else self._commands_packed
        self._commands_packed = 0

    def _count_read(self) -> None:
        if self._replies_owed > 0:
            self._replies_owed -= 1

    def _forget_owed(self) -> None:
        # Only what the socket owed: a batch packed but not yet sent is still to be counted.
        self._replies_owed = 0


class _SyncGuard(ReplyAccounting):
    def connect(self) -> None:
        try:
            super().connect()  # type: ignore[misc]
        except _NETWORK_ERRORS as exc:
            name_error(exc, self.connection_name)
            raise

    def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().on_connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except ResponseError as exc:  # a proxy or an ACL refusing CLIENT SETNAME, say so
            explain_refused_name(exc, self.connection_name, getattr(self, "client_name", None))
            raise

    def pack_commands(self, commands: Iterable[Any]) -> Any:
        return super().pack_commands(self._count_packed(commands))  # type: ignore[misc]

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            super().send_packed_command(command, check_health)  # type: ignore[misc]
        except _NETWORK_ERRORS as exc:
            name_error(exc, self.connection_name)
            raise
        self._count_sent(single=False)

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        # send_command may run inside a batch's send (HELLO on connect): keep the batch's count.
        packed, self._commands_packed = self._commands_packed, 0
        try:
            super().send_command(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._commands_packed = packed
        self._replies_owed += 1

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().read_response(*args, **kwargs)  # type: ignore[misc]
        except ResponseError:
            self._count_read()  # an error reply is a reply
            raise
        except _NETWORK_ERRORS as exc:
            name_error(exc, self.connection_name)
            raise
        self._count_read()
        return response

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        super().disconnect(*args, **kwargs)  # type: ignore[misc]
        self._forget_owed()


class _AsyncGuard(ReplyAccounting):
    async def connect(self) -> None:
        try:
            await super().connect()  # type: ignore[misc]
        except _NETWORK_ERRORS as exc:
            name_error(exc, self.connection_name)
            raise

    async def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().on_connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except ResponseError as exc:
            explain_refused_name(exc, self.connection_name, getattr(self, "client_name", None))
            raise

    def pack_commands(self, commands: Iterable[Any]) -> Any:
        return super().pack_commands(self._count_packed(commands))  # type: ignore[misc]

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        task = asyncio.current_task() if _WAIT_FOR_LOSES_CANCELLATIONS else None
        cancel_requests = task.cancelling() if task is not None else 0
        try:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
        except _NETWORK_ERRORS as exc:
            name_error(exc, self.connection_name)
            raise
        self._count_sent(single=False)
        if task is not None and task.cancelling() > cancel_requests:
            # redis-py sends under asyncio.wait_for, which on Python 3.11 returns normally when
            # the task is cancelled just as the send completes: the cancellation is lost and a
            # cancelled request would go on to wait for its replies. Deliver it, and close the
            # socket as redis-py does when a send is interrupted: its replies go with it.
            await self.disconnect(nowait=True)
            raise asyncio.CancelledError

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        packed, self._commands_packed = self._commands_packed, 0
        try:
            await super().send_command(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._commands_packed = packed
        self._replies_owed += 1

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except ResponseError:
            self._count_read()
            raise
        except _NETWORK_ERRORS as exc:
            name_error(exc, self.connection_name)
            raise
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


def owes_replies(connection: object) -> bool:
    return isinstance(connection, ReplyAccounting) and connection.replies_owed > 0


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
