"""The asyncio twin of :mod:`redis_conn.pools`: fair, safe to cancel, never poisoned.

A task waiting for a connection is woken in arrival order (FIFO) with one, or with leave to
make one; ``BLOCKING=False`` fails at once; either way the error is :class:`PoolExhausted`.
Every change to the pool's state happens between two ``await``\\ s, so a cancellation (which
arrives only at an ``await``) never leaves it half done, and giving a connection back never
suspends. As in the sync pool, lent connections are held only weakly: one whose borrower
vanished (an exception from a signal handler, say) is garbage-collected and its place freed
(looked for when a waiter reaches POOL_TIMEOUT, before it gives up). A checkout waits while
redis-py's own code holds the pool's lock to use idle connections (re-authentication for a
streaming credential provider, maintenance notifications), as redis-py's own checkout does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio.connection
import redis.asyncio.sentinel

from redis_conn.guarded import unfit_to_lend
from redis_conn.internals import ensure_async_connection
from redis_conn.pools import NamedPool, collect_garbage

_CREATE = object()  # what a waiter is woken with when it may make a connection


class AsyncGuardedPool(NamedPool):
    """The lending logic; mixed in front of redis-py's asyncio ConnectionPool classes. The
    lease table is :class:`~redis_conn.pools.NamedPool`'s; a waiter is a future."""

    _waiter_class = asyncio.Future

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._forget_leases()  # redis-py's asyncio pool does not call reset() when made
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        self._forget_leases()
        super().reset()  # type: ignore[misc]

    def _has_left(self, waiter: asyncio.Future[Any]) -> bool:
        return waiter.done()

    def _allow_create(self, waiter: asyncio.Future[Any]) -> None:
        waiter.set_result(_CREATE)

    def can_get_connection(self) -> bool:
        return bool(self.idle) or self._free_places() > 0

    # -- lending -----------------------------------------------------------------------------

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        observer = self.observer
        started = time.monotonic() if observer is not None else 0.0
        if self.redis_py_lock_held():
            await self._wait_for_redis_py()
        idle = self.idle
        if idle and not self._waiters:
            connection = idle.pop()
            self._lease(connection)
        elif not self._waiters and self._free_places() > 0:
            connection = self._create()
        elif not self.blocking:
            self._exhausted(waited=None)
        else:
            connection = await self._wait()
        if observer is not None:
            observer.waited(time.monotonic() - started)
        try:
            await self._ready(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def _wait_for_redis_py(self) -> None:
        """Take no connection while redis-py's own pool code holds the pool's lock to use
        idle ones (the AUTH of a re-authentication is in flight on them), as redis-py's own
        checkout waits; at most POOL_TIMEOUT, then fail as an exhausted pool does."""
        try:
            async with asyncio.timeout(self.pool_timeout):
                await self.await_redis_py_lock()
        except TimeoutError:
            self._exhausted(waited=self.pool_timeout)

    async def _wait(self) -> Any:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            # Woken by a connection given back, or by leave to make one; only at the deadline
            # does it look for places freed by borrowers that vanished (rare in asyncio, where
            # a cancellation lands at an await, not inside the pool's bookkeeping).
            await asyncio.wait((waiter,), timeout=self.pool_timeout)
            if not waiter.done():
                collect_garbage(self, time.monotonic())
                self._grant_free_places()
            if not waiter.done():
                self._exhausted(waited=self.pool_timeout)
            grant = waiter.result()
            if grant is _CREATE:
                self._leases.pop(id(waiter), None)  # its place becomes the connection's
                return self._create()
            return grant
        except BaseException:
            await self._abandon(waiter)
            raise

    async def _abandon(self, waiter: asyncio.Future[Any]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if not waiter.done():
            waiter.cancel()
            return
        if waiter.cancelled():
            return
        grant = waiter.result()
        if grant is _CREATE:
            self._leases.pop(id(waiter), None)
            self._grant_free_places()
        elif grant is not None:
            await self.release(grant)

    async def _ready(self, connection: Any) -> None:
        """Connect, and drop a socket the server closed while it sat idle (a restart): a write
        sent on it would be lost after leaving, and could not be sent again. Anything to read
        on an idle connection (end of file, or a stray push) means it is not fit to lend.
        That is redis-py's own check."""
        await ensure_async_connection(self, connection)

    async def release(self, connection: Any) -> None:
        if not self._is_lent(connection):
            return  # not lent by this pool, or given back twice: never close it under its holder
        del self._leases[id(connection)]
        keep = not self._closed and self._still_current(connection)
        if not keep or unfit_to_lend(connection) or connection.should_reconnect():
            # Closing with nowait does not suspend: a cancellation cannot land halfway.
            await connection.disconnect(nowait=True)  # unread replies, a changed session, go
        if not keep:
            self._grant_free_places()
            return
        waiter = self._next_waiter()
        if waiter is not None:
            self._lease(connection)
            waiter.set_result(connection)
        else:
            self.idle.append(connection)
        # As redis-py's pool (after the bookkeeping: listeners may suspend).
        if self._announces_release:
            await self.aannounce_release(connection)

    def _still_current(self, connection: Any) -> bool:
        """False for a socket to a Sentinel primary that has since failed over. (redis-py's
        asyncio ``owns_connection`` cannot be used: it calls a method its base lacks.)"""
        primary = getattr(self, "master_address", None)
        return not (
            getattr(self, "is_master", False)
            and primary is not None
            and connection.is_connected
            and (connection.host, connection.port) != primary
        )

    async def retire(self) -> None:
        """As :meth:`redis_conn.pools.GuardedPool.retire`: idle connections close now, lent
        ones when they come back, and nothing is pooled again."""
        self._closed = True
        idle, self.idle = self.idle, []
        for connection in idle:
            await connection.disconnect(nowait=True)


class AsyncGuardedConnectionPool(AsyncGuardedPool, redis.asyncio.connection.ConnectionPool):
    """Standalone, unix and TLS pools for asyncio."""


class AsyncGuardedSentinelConnectionPool(
    AsyncGuardedPool, redis.asyncio.sentinel.SentinelConnectionPool
):
    """The asyncio pool of a Sentinel-managed primary."""
