"""Connection pools that are fair, safe to interrupt, and can say how full they are.

One mechanism for every kind (standalone, unix, TLS, Sentinel, each Redis Cluster node), built
on redis-py's ``ConnectionPool`` (its connection construction, fork check and maintenance
hooks) with our own lending:

- **Fair.** A blocking pool hands a released connection straight to the longest waiting
  thread (FIFO); a newcomer never overtakes a waiter. ``BLOCKING=False`` fails at once.
  Either way the error is :class:`PoolExhausted`, naming the connection and its limit.
- **Safe to interrupt.** An exception can arrive between any two bytecodes (KeyboardInterrupt,
  a job timeout raised from a signal handler), including between taking a connection and
  recording it, or inside a ``finally`` that gives it back. So nothing here is a counter that
  an interruption could leave wrong: the pool holds idle connections, and only *weak*
  references to lent ones. A connection whose borrower vanished without giving it back is
  garbage-collected (closing its socket), and its place is counted free again at the next
  check. Waiters re-check every :data:`RECHECK_SECONDS`, so no interruption can make one hang
  past POOL_TIMEOUT; one that has waited :data:`COLLECT_AFTER_SECONDS` also runs the cycle
  collector, since an interrupted borrower's frame is often in a reference cycle with the
  exception that interrupted it. The only lock is a C-level ``RLock`` entered with
  ``with``, which CPython never leaves held when an exception interrupts the block.
- **Never poisoned.** A connection that still owes replies (see :mod:`redis_conn.guarded`) is
  closed when it comes back, instead of being handed to the next caller.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.connection
import redis.sentinel
from redis.event import AfterConnectionReleasedEvent
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn.exceptions import PoolExhausted
from redis_conn.guarded import is_connected, owes_replies

if TYPE_CHECKING:
    from redis_conn.metrics import PoolObserver

#: How often a waiting thread looks for places freed by borrowers that vanished.
RECHECK_SECONDS = 0.1
#: After waiting this long, a waiter runs ``gc.collect()`` (a pool does so once a second at most).
COLLECT_AFTER_SECONDS = 0.5

# Bumped in a forked child: cheaper than redis-py's os.getpid() on every checkout.
fork_generation = [0]


def _count_fork() -> None:
    fork_generation[0] += 1


os.register_at_fork(after_in_child=_count_fork)


def collect_garbage(pool: Any, now: float) -> None:
    """Run the cycle collector for a pool that is out of connections, once a second at most:
    a borrower that vanished inside a reference cycle (an interrupted frame and the exception
    that interrupted it) frees its connection only when the cycle is collected."""
    if now - getattr(pool, "_collected_at", 0.0) >= 1.0:
        pool._collected_at = now
        gc.collect()


@dataclass(frozen=True)
class PoolUsage:
    """What one pool holds right now."""

    pool_class: str
    max_connections: int
    created: int
    in_use: int
    waiting: int = 0

    @property
    def idle(self) -> int:
        return self.created - self.in_use


class _Waiter:
    """A thread waiting for a connection: woken with one, or with leave to create one."""

    __slots__ = ("__weakref__", "connection", "gone", "may_create", "wake")

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.connection: Any = None
        self.may_create = False
        self.gone = False


class NamedPool:
    """What the sync and asyncio pools share: their settings, their name, a safe repr."""

    max_connections: int

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
        self.observer: PoolObserver | None = None
        # Only re-authentication listens to "a connection was released" (redis-py's streaming
        # credential providers), or a listener on a dispatcher passed in; without either, the
        # event is not built for every release.
        self._announces_release = (
            kwargs.get("credential_provider") is not None
            or kwargs.get("event_dispatcher") is not None
        )
        super().__init__(*args, **kwargs)

    def __repr__(self) -> str:
        # redis-py's layout exactly (its own tests parse it). Beyond redis-py's four redacted
        # keys, any key naming a password, secret or token is hidden, and objects are shown by
        # type only. The name is in errors and ``connection_name``.
        kwargs: dict[str, Any] = getattr(self, "connection_kwargs", {})
        shown = ",".join(
            f"{key}={_shown_value(key, value)}"
            for key, value in kwargs.items()
            if key != "himport_registry"  # as redis-py 8 leaves it out
        )
        pool_class, connection_class = type(self), getattr(self, "connection_class", object)
        return (
            f"<{pool_class.__module__}.{pool_class.__name__}"
            f"(<{connection_class.__module__}.{connection_class.__name__}({shown})>)>"
        )


#: Connection keyword arguments whose values a repr never shows.
SECRET_KEYS = frozenset({"password", "username", "ssl_password", "credential_provider"})


def _shown_value(key: str, value: Any) -> str:
    if key in SECRET_KEYS or any(word in key for word in ("password", "secret", "token")):
        return "<REDACTED>"
    if value is None or isinstance(value, (str, int, float)):
        return str(value)
    # An object (a retry policy, a Sentinel connection's pool) by its type alone: its own repr
    # can be long, hold a credential, or lead back to this pool.
    return f"<{type(value).__name__}>"


class GuardedPool(NamedPool):
    """The lending logic; mixed in front of redis-py's ConnectionPool or its Sentinel pool."""

    _available_connections: list[Any]
    _lock: Any

    # -- state -------------------------------------------------------------------------------

    def reset(self) -> None:
        # Called by __init__ and again in a forked child: the child starts with nothing lent.
        self._lock = threading.RLock()
        # id(borrowed thing) -> weak reference to it; the thing is a connection, or a waiter
        # that was given leave to create one. A dead reference is a free place.
        self._leases: dict[int, weakref.ref[Any]] = {}
        self._waiters: deque[_Waiter] = deque()
        self._closed = False
        self._generation = fork_generation[0]
        super().reset()  # type: ignore[misc]  # sets _available_connections and pid, last

    @property
    def _in_use_connections(self) -> set[Any]:
        """The connections lent out now (redis-py's maintenance code iterates this)."""
        refs = list(self._leases.values())
        return {c for c in (r() for r in refs) if c is not None and not isinstance(c, _Waiter)}

    @_in_use_connections.setter
    def _in_use_connections(self, value: Any) -> None:
        # redis-py's reset() assigns an empty set; our leases live in _leases.
        pass

    def make_connection(self) -> Any:
        # redis-py's own cap counts every connection ever made; ours counts what is held now.
        self._created_connections = 0
        connection = super().make_connection()  # type: ignore[misc]
        connection.connection_name = self.connection_name
        connection._redis_conn_ref = weakref.ref(connection)
        return connection

    # -- lending -----------------------------------------------------------------------------

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._generation != fork_generation[0]:
            self._checkpid()  # type: ignore[attr-defined]
        observer = self.observer
        started = time.monotonic() if observer is not None else 0.0
        with self._lock:
            idle = self._available_connections
            if idle and not self._waiters:
                connection = idle.pop()
                self._leases[id(connection)] = connection._redis_conn_ref
            else:
                connection = self._take_locked()
        handed = isinstance(connection, _Waiter)
        if handed:
            connection = self._wait(connection)
        if observer is not None:
            observer.waited(time.monotonic() - started)
        return self._ready(connection, just_used=handed)

    def _take_locked(self) -> Any:
        """A connection, or a queued :class:`_Waiter` when the caller must wait."""
        if not self._waiters and self._free_places_locked() > 0:
            return self._create_locked()
        if not self.blocking:
            self._exhausted(waited=None)
        waiter = _Waiter()
        self._waiters.append(waiter)
        return waiter

    def _free_places_locked(self) -> int:
        free = self.max_connections - len(self._available_connections) - len(self._leases)
        if free <= 0:
            # Borrowers that vanished (interrupted before giving back) left dead references.
            for key, ref in list(self._leases.items()):
                if ref() is None:
                    self._leases.pop(key, None)
            free = self.max_connections - len(self._available_connections) - len(self._leases)
        return free

    def _create_locked(self) -> Any:
        connection = self.make_connection()
        self._leases[id(connection)] = connection._redis_conn_ref
        return connection

    def _wait(self, waiter: _Waiter) -> Any:
        started = time.monotonic()
        deadline = started + self.pool_timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    waiter.wake.acquire(timeout=min(remaining, RECHECK_SECONDS))
                now = time.monotonic()
                if waiter.connection is None and (
                    now >= deadline or now - started >= COLLECT_AFTER_SECONDS
                ):
                    collect_garbage(self, now)
                with self._lock:
                    connection = self._collect_locked(waiter)
                    if connection is not None:
                        return connection
                    self._grant_free_places_locked()
                    connection = self._collect_locked(waiter)
                    if connection is not None:
                        return connection
                    if time.monotonic() >= deadline:
                        self._exhausted(waited=self.pool_timeout)
                    if waiter not in self._waiters:
                        # Popped by a giver that was interrupted before handing over: we
                        # were first in line, so we go back to the front.
                        self._waiters.appendleft(waiter)
        except BaseException:
            self._abandon(waiter)
            raise

    def _collect_locked(self, waiter: _Waiter) -> Any:
        connection = waiter.connection
        if connection is not None:
            waiter.connection = None
            return connection
        if waiter.may_create:
            waiter.may_create = False
            self._leases.pop(id(waiter), None)  # its place becomes the new connection's
            return self._create_locked()
        return None

    def _grant_free_places_locked(self) -> None:
        """Give places freed by vanished borrowers to the waiters first in line."""
        free = self._free_places_locked()
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if waiter.gone:
                continue
            self._leases[id(waiter)] = weakref.ref(waiter)
            waiter.may_create = True
            waiter.wake.release()
            free -= 1

    def _abandon(self, waiter: _Waiter) -> None:
        """A waiter leaves (timed out, interrupted): give back whatever it was handed."""
        with self._lock:
            waiter.gone = True
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            connection, waiter.connection = waiter.connection, None
            if waiter.may_create:
                waiter.may_create = False
                self._leases.pop(id(waiter), None)
                self._grant_free_places_locked()
        if connection is not None:
            self.release(connection)

    def _exhausted(self, *, waited: float | None) -> None:
        if self.observer is not None:
            self.observer.timed_out()
        raise PoolExhausted(self.connection_name, self.max_connections, waited=waited)

    def _ready(self, connection: Any, *, just_used: bool = False) -> Any:
        """Connect, and drop a socket the server closed while it sat idle (a restart): a write
        sent on it would be lost after leaving, and could not be sent again. A connection
        handed over by the thread that was using it a moment ago is not polled again."""
        try:
            if not is_connected(connection):
                connection.connect()
                return connection
            if just_used:
                return connection
            try:
                if (
                    connection.can_read()
                    and self.cache is None  # type: ignore[attr-defined]
                    and not self.maint_notifications_enabled()  # type: ignore[attr-defined]
                ):
                    raise RedisConnectionError("Connection has data")
            except (RedisConnectionError, RedisTimeoutError, OSError):
                connection.disconnect()
                connection.connect()
            return connection
        except BaseException:
            self.release(connection)
            raise

    def release(self, connection: Any) -> None:
        if owes_replies(connection) or connection.should_reconnect():
            connection.disconnect()  # its unread replies go with the socket
        with self._lock:
            if self._leases.pop(id(connection), None) is None:
                return  # not lent by this pool (or given back twice, or lent before a fork)
            if self._closed or not self.owns_connection(connection):  # type: ignore[attr-defined]
                connection.disconnect()
                self._grant_free_places_locked()
                return
            while self._waiters:
                waiter = self._waiters.popleft()
                if waiter.gone:
                    continue
                self._leases[id(connection)] = connection._redis_conn_ref
                waiter.connection = connection
                waiter.wake.release()
                break
            else:
                self._available_connections.append(connection)
        if self._announces_release:
            # As redis-py's pool: streaming credentials re-authenticate released connections.
            event = AfterConnectionReleasedEvent(connection)  # type: ignore[no-untyped-call]
            self._event_dispatcher.dispatch(event)  # type: ignore[attr-defined]

    def retire(self) -> None:
        """Close idle connections now and lent ones as they come back; a command in flight in
        another thread completes. The pool still lends afterwards, closing each connection
        on its return, so a client kept past ``configure()`` keeps working without leaking.
        (redis-py's ``close()``/``disconnect()`` close lent connections under their users.)"""
        with self._lock:
            self._closed = True
            idle, self._available_connections = self._available_connections, []
        for connection in idle:
            connection.disconnect()

    def usage(self) -> PoolUsage:
        with self._lock:
            lent = [r() for r in self._leases.values()]
            in_use = sum(1 for c in lent if c is not None and not isinstance(c, _Waiter))
            return PoolUsage(
                pool_class="BlockingConnectionPool" if self.blocking else "ConnectionPool",
                max_connections=self.max_connections,
                created=len(self._available_connections) + in_use,
                in_use=in_use,
                waiting=sum(1 for w in self._waiters if not w.gone),
            )


class GuardedConnectionPool(GuardedPool, redis.connection.ConnectionPool):
    """Standalone, unix, TLS and (one per node) Redis Cluster pools."""


class GuardedSentinelConnectionPool(GuardedPool, redis.sentinel.SentinelConnectionPool):
    """The pool of a Sentinel-managed primary."""
