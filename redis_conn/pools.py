"""Connection pools that fail well and can say how full they are.

One mechanism for every kind (standalone, unix, TLS, Sentinel, each Redis Cluster node):
a semaphore of MAX_CONNECTIONS permits in front of redis-py's pool. ``BLOCKING=True`` waits up
to POOL_TIMEOUT for a permit, ``BLOCKING=False`` fails at once; either way the error is
:class:`PoolExhausted` naming the connection and its limit. A connection that still owes
replies is closed on release instead of being handed to the next caller.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.connection
import redis.sentinel

from redis_conn.exceptions import PoolExhausted
from redis_conn.guarded import owes_replies

if TYPE_CHECKING:
    from redis_conn.metrics import PoolObserver


@dataclass(frozen=True)
class PoolUsage:
    """What one pool holds right now."""

    pool_class: str
    max_connections: int
    created: int
    in_use: int

    @property
    def idle(self) -> int:
        return self.created - self.in_use


class _Permits:
    """Lease accounting shared by the sync pools; reset in a forked child."""

    connection_name: str
    blocking: bool
    pool_timeout: float
    max_connections: int
    #: Set by the metrics layer when metrics are on (redis_conn.metrics); None costs nothing.
    observer: PoolObserver | None = None

    def _init_permits(self) -> None:
        self._permits = threading.BoundedSemaphore(self.max_connections)
        self._leased: set[Any] = set()
        self._made = 0
        self._usage_lock = threading.Lock()

    def _take_permit(self) -> None:
        acquired = (
            self._permits.acquire(timeout=self.pool_timeout)
            if self.blocking
            else self._permits.acquire(blocking=False)
        )
        if not acquired:
            if self.observer is not None:
                self.observer.timed_out()
            raise PoolExhausted(
                self.connection_name,
                self.max_connections,
                waited=self.pool_timeout if self.blocking else None,
            )

    def usage(self) -> PoolUsage:
        with self._usage_lock:
            return PoolUsage(
                pool_class="BlockingConnectionPool" if self.blocking else "ConnectionPool",
                max_connections=self.max_connections,
                created=self._made,
                in_use=len(self._leased),
            )


class _GuardedPoolMixin(_Permits):
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

    def reset(self) -> None:
        # Called by __init__ and again in a forked child: the child starts with no leases.
        super().reset()  # type: ignore[misc]
        self._init_permits()

    def make_connection(self) -> Any:
        connection = super().make_connection()  # type: ignore[misc]
        connection.connection_name = self.connection_name
        with self._usage_lock:
            self._made += 1
        return connection

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self._checkpid()  # type: ignore[attr-defined]
        observer = self.observer
        started = time.perf_counter() if observer is not None else 0.0
        self._take_permit()
        try:
            connection = super().get_connection(*args, **kwargs)  # type: ignore[misc]
        except BaseException:
            self._permits.release()
            raise
        with self._usage_lock:
            self._leased.add(connection)
        if observer is not None:
            observer.waited(time.perf_counter() - started)
        return connection

    def release(self, connection: Any) -> None:
        if owes_replies(connection):
            connection.disconnect()
        with self._usage_lock:
            leased = connection in self._leased
            self._leased.discard(connection)
        super().release(connection)  # type: ignore[misc]
        if leased:
            self._permits.release()

    def __repr__(self) -> str:
        # redis-py's repr lists the connection kwargs, password included.
        return (
            f"<{type(self).__name__} {self.connection_name!r} "
            f"max_connections={self.max_connections}>"
        )


class GuardedConnectionPool(_GuardedPoolMixin, redis.connection.ConnectionPool):
    """Standalone, unix, TLS and (one per node) Redis Cluster pools."""


class GuardedSentinelConnectionPool(_GuardedPoolMixin, redis.sentinel.SentinelConnectionPool):
    """The pool of a Sentinel-managed primary."""
