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
  exception that interrupted it. The only lock is a C-level ``RLock``, taken by
  :func:`locked` so that no interrupt can leave it held (not ``with``: see there why).
- **Never poisoned.** A connection that still owes replies (see :mod:`redis_conn.guarded`) is
  closed when it comes back, instead of being handed to the next caller.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from threading import get_ident
from typing import Any, ClassVar, Protocol, TypeVar

import redis.connection
import redis.sentinel

from redis_conn.exceptions import PoolExhausted
from redis_conn.guarded import unfit_to_lend
from redis_conn.internals import PoolInternals, ensure_connection, is_connected

T = TypeVar("T")

#: How often a waiting thread looks for places freed by borrowers that vanished.
RECHECK_SECONDS = 0.1
#: After waiting this long, a waiter runs ``gc.collect()`` (a pool does so once a second at most).
COLLECT_AFTER_SECONDS = 0.5

# Bumped in a forked child: cheaper than redis-py's os.getpid() on every checkout.
fork_generation = [0]


def _count_fork() -> None:
    fork_generation[0] += 1


os.register_at_fork(after_in_child=_count_fork)


def locked(lock: Any, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` holding ``lock`` (an ``RLock``), which no interrupt can leave held.

    Not ``with lock:``. Since Python 3.14 ``with`` calls ``__enter__`` through a CALL after
    which the interpreter runs pending signal handlers *before* the block's cleanup is in
    place: an exception raised there by a signal handler (a job timeout, KeyboardInterrupt)
    leaves the lock held for good, and every other thread waits for it forever (seen in
    ``test_a_thousand_random_interrupts_give_no_wrong_reply_and_leak_nothing`` on 3.14). Here
    the acquire is inside the ``try``, and the release is the first call of the ``finally``;
    an ``RLock`` refuses to release what this thread does not hold (when the acquire itself
    was interrupted), and the periodic check after ``release()`` runs once it is released.
    """
    try:
        lock.acquire()
        return work(*args)
    finally:
        # Not contextlib.suppress: its ``with`` would be an interrupt point before the release.
        try:  # noqa: SIM105
            lock.release()
        except RuntimeError:  # the acquire was interrupted: nothing is held
            pass


def collect_garbage(pool: Any, now: float) -> None:
    """Run the cycle collector for a pool that is out of connections, once a second at most.

    A borrower that vanished inside a reference cycle (an interrupted frame and the exception
    that interrupted it) frees its connection only when the cycle is collected, and the
    collector's own schedule may not get to it before POOL_TIMEOUT. The trade-off: this is a
    full ``gc.collect()``, run on the waiting thread (or the event loop of a waiting task),
    which stalls that thread, and under the GIL the whole process, for as long as a full
    collection of its heap takes. It runs only for a pool that is already exhausted, from a
    sync waiter that has waited :data:`COLLECT_AFTER_SECONDS` (or reached POOL_TIMEOUT), or an
    asyncio one at POOL_TIMEOUT, and at most once a second per pool; a pool with a free
    connection never pays it."""
    if now - getattr(pool, "_collected_at", 0.0) >= 1.0:
        pool._collected_at = now
        gc.collect()


def behaviour_name(*, blocking: bool) -> str:
    """The redis-py pool class a pool waits like: what the health report calls its "class"."""
    return "BlockingConnectionPool" if blocking else "ConnectionPool"


class PoolObserver(Protocol):
    """What a pool tells whoever watches it (the metrics layer), when its ``observer`` is
    not ``None``. Sync and asyncio pools alike call it; :mod:`redis_conn.otel` implements it."""

    def waited(self, seconds: float) -> None:
        """A checkout succeeded after ``seconds`` (waiting for a permit, connecting)."""

    def timed_out(self) -> None:
        """A checkout raised :class:`~redis_conn.PoolExhausted`."""


@dataclass(frozen=True)
class PoolUsage:
    """What one pool holds right now."""

    #: The redis-py pool whose waiting behaviour this pool has, as the health report names it
    #: (CONTRACT section 5): ``"BlockingConnectionPool"`` (BLOCKING) or ``"ConnectionPool"``.
    #: Not the pool's class, which is one of ours.
    behaves_like: str
    max_connections: int
    created: int
    in_use: int
    waiting: int = 0

    @property
    def idle(self) -> int:
        return self.created - self.in_use


class _Waiter:
    """A thread waiting for a connection: woken with one, or with leave to create one."""

    __slots__ = ("__weakref__", "connection", "gone", "may_create", "thread", "wake")

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.connection: Any = None
        self.may_create = False
        self.gone = False
        self.thread = get_ident()  # who will hold what it is handed


class NamedPool(PoolInternals):
    """What the sync and asyncio pools share: their settings, their name, a safe repr, and the
    lease table. They differ only in how a caller waits and how a connection is given back.

    The lease table maps ``id(borrowed thing)`` to a *weak* reference to it: a connection
    lent, or a waiter given leave to create one (the place is its until it does). A dead
    reference is a borrower that vanished without giving back: a free place. ``_waiters`` is
    the line of waiters, first come first served. The sync pool calls every method below
    holding its lock (through :func:`locked`), the asyncio pool between two ``await``\\ s.
    """

    max_connections: int
    #: What a waiter is (its lease holds a place for a connection it may create).
    _waiter_class: ClassVar[type]

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
        self._closed = False
        # Only re-authentication listens to "a connection was released" (redis-py's streaming
        # credential providers), or a listener on a dispatcher passed in; without either, the
        # event is not built for every release.
        self._announces_release = (
            kwargs.get("credential_provider") is not None
            or kwargs.get("event_dispatcher") is not None
        )
        super().__init__(*args, **kwargs)

    @property
    def retired(self) -> bool:
        """Whether ``retire()`` was called: its client was let go by its registry."""
        return self._closed

    # -- the lease table ---------------------------------------------------------------------

    def _forget_leases(self) -> None:
        """Nothing lent, nobody waiting: a new pool, or one in a forked child."""
        self._leases: dict[int, weakref.ref[Any]] = {}
        self._waiters: deque[Any] = deque()
        self._closed = False

    # How a waiter is told things: a thread's lock, or a task's future (the two pools).
    @abstractmethod
    def _has_left(self, waiter: Any) -> bool:
        """Whether a waiter in line no longer waits (it gave up, or was already served)."""

    @abstractmethod
    def _allow_create(self, waiter: Any) -> None:
        """Wake a waiter whose place is leased to it, with leave to create a connection."""

    def lent_connections(self) -> set[Any]:
        """The connections lent out now (redis-py's maintenance code iterates them)."""
        refs, waiter_class = list(self._leases.values()), self._waiter_class
        return {c for c in (r() for r in refs) if c is not None and not isinstance(c, waiter_class)}

    def make_connection(self) -> Any:
        connection = super().make_connection()  # type: ignore[misc]
        connection.connection_name = self.connection_name
        connection._redis_conn_ref = weakref.ref(connection)
        return connection

    def _lease(self, connection: Any) -> None:
        """Record ``connection`` as lent."""
        self._leases[id(connection)] = connection._redis_conn_ref

    def _is_lent(self, connection: Any) -> bool:
        """Whether this pool lent ``connection`` and has not had it back."""
        lease = self._leases.get(id(connection))
        return lease is not None and id(lease()) == id(connection)

    def _free_places(self) -> int:
        free = self.max_connections - len(self.idle) - len(self._leases)
        if free <= 0:
            # Borrowers that vanished (interrupted before giving back) left dead references.
            for key, ref in list(self._leases.items()):
                if ref() is None:
                    self._leases.pop(key, None)
            free = self.max_connections - len(self.idle) - len(self._leases)
        return free

    def _create(self) -> Any:
        connection = self.make_connection()
        self._lease(connection)
        return connection

    def _next_waiter(self) -> Any:
        """The first waiter in line that still waits, taken out of the line; else None."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not self._has_left(waiter):
                return waiter
        return None

    def _grant_free_places(self) -> None:
        """Give places freed by vanished borrowers to the waiters first in line."""
        free = self._free_places()
        while free > 0:
            waiter = self._next_waiter()
            if waiter is None:
                return
            self._leases[id(waiter)] = weakref.ref(waiter)
            self._allow_create(waiter)
            free -= 1

    def _exhausted(self, *, waited: float | None) -> None:
        if self.observer is not None:
            self.observer.timed_out()
        raise PoolExhausted(self.connection_name, self.max_connections, waited=waited)

    def usage(self) -> PoolUsage:
        lent = [r() for r in self._leases.values()]
        in_use = sum(1 for c in lent if c is not None and not isinstance(c, self._waiter_class))
        return PoolUsage(
            behaves_like=behaviour_name(blocking=self.blocking),
            max_connections=self.max_connections,
            created=len(self.idle) + in_use,
            in_use=in_use,
            waiting=sum(1 for w in self._waiters if not self._has_left(w)),
        )

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
    """The lending logic; mixed in front of redis-py's ConnectionPool or its Sentinel pool.

    A lease also records the thread that holds it (``_redis_conn_holder``): only that thread
    gives the connection back into circulation (see :meth:`release`)."""

    _lock: Any
    _waiter_class = _Waiter

    # -- state -------------------------------------------------------------------------------

    def reset(self) -> None:
        # Called by __init__ and again in a forked child: the child starts with nothing lent.
        self._lock = threading.RLock()
        self._forget_leases()
        self._generation = fork_generation[0]
        super().reset()  # type: ignore[misc]  # sets _available_connections and pid, last

    def make_connection(self) -> Any:
        # redis-py's own cap counts every connection ever made; ours counts what is held now.
        self.forget_creation_count()
        return super().make_connection()

    def _lease(self, connection: Any, holder: int | None = None) -> None:
        """Record ``connection`` as lent to ``holder`` (a thread id; default: this thread)."""
        self._leases[id(connection)] = connection._redis_conn_ref
        connection._redis_conn_holder = get_ident() if holder is None else holder

    def _has_left(self, waiter: _Waiter) -> bool:
        return waiter.gone

    def _allow_create(self, waiter: _Waiter) -> None:
        waiter.may_create = True
        waiter.wake.release()

    # -- lending -----------------------------------------------------------------------------

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._generation != fork_generation[0]:
            self.check_fork()
        observer = self.observer
        started = time.monotonic() if observer is not None else 0.0
        connection = locked(self._lock, self._lend_locked)
        handed = isinstance(connection, _Waiter)
        if handed:
            connection = self._wait(connection)
        if observer is not None:
            observer.waited(time.monotonic() - started)
        return self._ready(connection, just_used=handed)

    def _lend_locked(self) -> Any:
        """A connection, or a queued :class:`_Waiter` when the caller must wait."""
        idle = self.idle
        if idle and not self._waiters:
            connection = idle.pop()
            self._lease(connection)
            return connection
        if not self._waiters and self._free_places() > 0:
            return self._create()
        if not self.blocking:
            self._exhausted(waited=None)
        waiter = _Waiter()
        self._waiters.append(waiter)
        return waiter

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
                connection = locked(self._lock, self._recheck_locked, waiter, deadline)
                if connection is not None:
                    return connection
        except BaseException:
            self._abandon(waiter)
            raise

    def _recheck_locked(self, waiter: _Waiter, deadline: float) -> Any:
        connection = self._collect_locked(waiter)
        if connection is not None:
            return connection
        self._grant_free_places()
        connection = self._collect_locked(waiter)
        if connection is not None:
            return connection
        if time.monotonic() >= deadline:
            self._exhausted(waited=self.pool_timeout)
        if waiter not in self._waiters:
            # Popped by a giver that was interrupted before handing over: we were first in
            # line, so we go back to the front.
            self._waiters.appendleft(waiter)
        return None

    def _collect_locked(self, waiter: _Waiter) -> Any:
        connection = waiter.connection
        if connection is not None:
            waiter.connection = None
            return connection
        if waiter.may_create:
            waiter.may_create = False
            self._leases.pop(id(waiter), None)  # its place becomes the new connection's
            return self._create()
        return None

    def _abandon(self, waiter: _Waiter) -> None:
        """A waiter leaves (timed out, interrupted): give back whatever it was handed."""
        connection = locked(self._lock, self._abandon_locked, waiter)
        if connection is not None:
            self.release(connection)

    def _abandon_locked(self, waiter: _Waiter) -> Any:
        waiter.gone = True
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        connection, waiter.connection = waiter.connection, None
        if waiter.may_create:
            waiter.may_create = False
            self._leases.pop(id(waiter), None)
            self._grant_free_places()
        return connection

    def _ready(self, connection: Any, *, just_used: bool = False) -> Any:
        """Connect, and drop a socket the server closed while it sat idle (a restart): a write
        sent on it would be lost after leaving, and could not be sent again. That is redis-py's
        own check (:func:`~redis_conn.internals.ensure_connection`); a connection handed over
        by the thread that was using it a moment ago is not polled again."""
        try:
            if not (just_used and is_connected(connection)):
                ensure_connection(self, connection)
            return connection
        except BaseException:
            self.release(connection)
            raise

    def release(self, connection: Any) -> None:
        """Take a connection back from the thread that holds it.

        A release of a connection already given back does nothing, and one by a thread that
        does not hold the lease never puts the connection back into circulation: a finalizer
        (run by the garbage collector in any thread) releasing what its object was interrupted
        giving back must not hand its next holder's connection to a third thread. Such a
        release frees the place only of a connection it finds closed (redis-py's
        ``PubSub.run_in_thread()`` closes and releases its connection from its own thread):
        at worst a place is counted free while its old holder still uses the connection, which
        is dropped when given back; never a reply read by someone else.
        """
        if not locked(self._lock, self._end_lease_locked, connection):
            return
        # Neither lent nor idle from here: an interrupt now drops the connection (closed when
        # collected) and its place is free at once.
        if unfit_to_lend(connection) or connection.should_reconnect():
            connection.disconnect()  # its unread replies, its changed session, go with the socket
        if not locked(self._lock, self._give_back_locked, connection):
            connection.disconnect()  # a retired pool's, or a failed-over primary's
            return
        if self._announces_release:
            # As redis-py's pool: streaming credentials re-authenticate released connections.
            self.announce_release(connection)

    def _end_lease_locked(self, connection: Any) -> bool:
        """Whether the caller, the connection's holder, may give it back now."""
        if not self._is_lent(connection):
            return False  # not lent by this pool, or given back twice
        if getattr(connection, "_redis_conn_holder", None) != get_ident():
            if not is_connected(connection):
                del self._leases[id(connection)]  # closed by its user: its place is free
                self._grant_free_places()
            return False
        del self._leases[id(connection)]
        connection._redis_conn_holder = None
        return True

    def _give_back_locked(self, connection: Any) -> bool:
        """Hand the connection to the first waiter, or keep it idle; False: close it."""
        if self._closed or not self.owns_connection(connection):  # type: ignore[attr-defined]
            self._grant_free_places()
            return False
        waiter = self._next_waiter()
        if waiter is not None:
            self._lease(connection, waiter.thread)
            waiter.connection = connection
            waiter.wake.release()
            return True
        self.idle.append(connection)
        return True

    def retire(self) -> None:
        """Close idle connections now and lent ones as they come back; a command in flight in
        another thread completes. The pool still lends afterwards, closing each connection
        on its return, so a client kept past ``configure()`` keeps working without leaking.
        (redis-py's ``close()``/``disconnect()`` close lent connections under their users.)"""
        idle: list[Any] = locked(self._lock, self._retire_locked)
        for connection in idle:
            connection.disconnect()

    def _retire_locked(self) -> list[Any]:
        self._closed = True
        idle, self.idle = self.idle, []
        return idle

    def usage(self) -> PoolUsage:
        return locked(self._lock, super().usage)


class GuardedConnectionPool(GuardedPool, redis.connection.ConnectionPool):
    """Standalone, unix, TLS and (one per node) Redis Cluster pools."""


class GuardedSentinelConnectionPool(GuardedPool, redis.sentinel.SentinelConnectionPool):
    """The pool of a Sentinel-managed primary."""
