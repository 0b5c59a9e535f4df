"""The invalidation listener of a CLIENT_CACHE connection: one thread, one connection.

The listener's connection asks the server to announce every write (``CLIENT TRACKING ON
REDIRECT <itself> BCAST``, Redis >= 6.0) and subscribes to ``__redis__:invalidate``, where
the server publishes the keys any client changed, expired or evicted (RESP2), and a null for
FLUSHDB/FLUSHALL. A thread reads it continuously, so an idle process learns of a write as
soon as the message arrives (CONTRACT section 11: nothing waits for the next command).

Why broadcast and not "track what this process read": in the default mode the server
remembers the *connection* that read a key, and forgets what it promised when that connection
closes (a pool trimming an idle connection, a server ``timeout``, CLIENT KILL): the
invalidations it would have sent are then silently lost. Broadcasting ties every promise to
the one connection this thread reads, whose loss it sees at once. The price is a message per
write on the server (or per write under ``PREFIXES``), whichever process made it.

The cache serves nothing until the subscription is confirmed, and is emptied whenever the
connection is lost, fails to answer a PING within the interval, or the process forks.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Callable
from typing import Any

import redis.connection

from redis_conn import messages
from redis_conn.client_cache import ClientCache
from redis_conn.internals import socket_of

__all__ = ["CHANNEL", "InvalidationListener", "plain_connection_factory"]

CHANNEL = b"__redis__:invalidate"
#: Without a message for this long the listener PINGs; without an answer for as long again,
#: the connection counts as lost (the cache is emptied).
PING_INTERVAL = 1.0
#: How long after the last look at the socket the cache may answer without looking again
#: (:attr:`ClientCache.fresh_until`). The thread looks whenever data arrives; a read that
#: finds the window closed looks itself (one non-blocking poll, :meth:`vouch`), so no copy
#: is served later than ``WINDOW`` (a quarter of a millisecond) after its invalidation
#: reached the process, however busy its threads are (a thread waiting for the GIL could
#: wait up to the interpreter's switch interval, 5 ms).
WINDOW = 0.00025
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 2.0


def plain_connection_factory(pool: Any, client_name: str | None) -> Callable[[], Any]:
    """Connections like ``pool``'s (address, TLS, credentials, Sentinel), of redis-py's own
    class (the listener reads messages no command asked for: no reply accounting), speaking
    RESP2 (the invalidations come as pub/sub messages) and never decoding."""
    cls = next(
        c
        for c in pool.connection_class.__mro__
        if c.__module__.startswith("redis.") and issubclass(c, redis.connection.AbstractConnection)
    )
    kwargs = dict(pool.connection_kwargs)
    kwargs.update(protocol=2, decode_responses=False)
    kwargs.pop("retry", None)  # the listener reconnects on its own schedule
    if client_name:
        kwargs["client_name"] = f"{client_name}.invalidations"

    def connect() -> Any:
        return cls(**kwargs)

    return connect


class InvalidationListener:
    """Keeps ``cache`` listening (see the module docstring)."""

    def __init__(
        self,
        cache: ClientCache,
        connection_factory: Callable[[], Callable[[], Any]],
        *,
        ping_interval: float = PING_INTERVAL,
        window: float = WINDOW,
    ) -> None:
        self.cache = cache
        self._factory = connection_factory  # called in the thread: may build the pool
        self.ping_interval = ping_interval
        self.window = window
        # Held by whoever reads the connection: the thread, or a read that vouches.
        self._reading = threading.RLock()
        self._heard_at = 0.0
        self._pinged_at: float | None = None
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._connection: Any = None
        self._waited = False
        #: How often the connection was lost (or never made) since the first listen.
        self.losses = 0
        self.last_error: str | None = None
        self.client_id: int | None = None

    # -- control --------------------------------------------------------------------------------

    def start_once(self) -> bool:
        """Start the thread unless it runs (or was stopped); whether this call started it."""
        if self._thread is not None or self._stop.is_set():
            return False
        with self._start_lock:
            if self._thread is not None:
                return False
            self._thread = threading.Thread(
                target=self._run,
                name=f"redis_conn invalidations {self.cache.name!r}",
                daemon=True,
            )
            self._thread.start()
            return True

    def wait_first(self, timeout: float) -> None:
        """Wait (once per listener) for the first subscription: a process's first reads can
        then be kept. Later calls return at once, so a server that is down costs no wait."""
        if not self._waited:
            self._waited = True
            self._listening.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        connection = self._connection
        if connection is not None:
            # Wakes the thread's read (the socket goes away under it); best effort: the
            # thread stops at its next wake anyway.
            with contextlib.suppress(Exception):
                connection.disconnect()

    def forked(self) -> InvalidationListener:
        """A listener for a forked child (threads do not survive a fork)."""
        return InvalidationListener(
            self.cache,
            self._factory,
            ping_interval=self.ping_interval,
            window=self.window,
        )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = _FIRST_BACKOFF
        connect: Callable[[], Any] | None = None
        while not self._stop.is_set():
            try:
                if connect is None:
                    connect = self._factory()
                self._listen(connect())
            except Exception as exc:
                self.last_error = messages.prefixed(
                    self.cache.name, f"the client cache's invalidation connection failed: {exc}"
                )
            finally:
                was_listening = self._listening.is_set()
                self._listening.clear()
                self.cache.listening_lost()
                self._close()
            if was_listening:
                backoff = _FIRST_BACKOFF
            self.losses += 1
            self._stop.wait(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def _listen(self, connection: Any) -> None:
        self._connection = connection
        connection.connect()
        connection.send_command("CLIENT", "ID")
        client_id = int(connection.read_response())
        prefixes: list[Any] = []
        for prefix in self.cache.settings.prefixes:
            prefixes += ["PREFIX", prefix]
        connection.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", *prefixes
        )
        connection.read_response()
        connection.send_command("SUBSCRIBE", CHANNEL)
        connection.read_response()  # [subscribe, channel, 1]
        self.client_id = client_id
        self.last_error = None
        self.cache.listening_started()
        self._listening.set()
        self._heard_at = time.monotonic()
        self._pinged_at = None
        interval = self.ping_interval
        while not self._stop.is_set():
            sock = socket_of(connection)
            if sock is None:
                raise ConnectionError("the connection was closed")
            # Wait for data without reading it: reading happens under the lock, here or in
            # a read that vouches (whichever thread has the interpreter first).
            select.select([sock], [], [], interval)
            self._reading.acquire()
            try:
                self._drain(connection)
                now = time.monotonic()
                if now - self._heard_at > interval:
                    if self._pinged_at is not None:  # no pong, nothing else, for an interval
                        raise TimeoutError(f"no answer to PING within {interval:g}s")
                    connection.send_command("PING")
                    self._pinged_at = now
            finally:
                self._reading.release()

    def _drain(self, connection: Any) -> None:
        """Handle everything that has arrived; then the cache may answer for a window."""
        while True:
            checked = time.monotonic()
            if not connection.can_read(timeout=0):
                break
            self._handle(connection.read_response())
            self._heard_at = checked
            self._pinged_at = None
        self.cache.fresh_until = checked + self.window

    def vouch(self) -> bool:
        """For a read that found the window closed: drain what has arrived, in this thread,
        and say whether the cache may answer (False: go to the server)."""
        reading = self._reading
        try:
            if not reading.acquire(blocking=False):  # the thread is draining right now
                return False
            connection = self._connection
            if connection is None or not self._listening.is_set():
                return False
            # After a drain the parser holds no whole message, so a socket with nothing to
            # read means nothing new: one poll, no parsing (the common case).
            checked = time.monotonic()
            sock = socket_of(connection)
            if sock is not None and not select.select([sock], [], [], 0)[0]:
                self.cache.fresh_until = checked + self.window
                return True
            self._drain(connection)
            return True
        except Exception as exc:  # the connection broke: the thread reconnects
            self.last_error = messages.prefixed(
                self.cache.name, f"the client cache's invalidation connection failed: {exc}"
            )
            self.cache.listening_lost()
            return False
        finally:
            # Not contextlib.suppress: released first, whatever happens (see pools.locked).
            try:  # noqa: SIM105
                reading.release()
            except RuntimeError:  # not acquired
                pass

    def _handle(self, message: Any) -> None:
        if not isinstance(message, list) or len(message) < 3 or message[0] != b"message":
            return  # [pong, ""] or a subscription confirmation
        keys = message[2]
        if keys is None:  # FLUSHDB / FLUSHALL
            self.cache.flush()
        else:
            self.cache.invalidate(keys)

    def _close(self) -> None:
        self._reading.acquire()
        try:
            connection, self._connection = self._connection, None
        finally:
            self._reading.release()
        if connection is not None:
            with contextlib.suppress(Exception):  # closing a broken socket
                connection.disconnect()

    def __repr__(self) -> str:
        state = "listening" if self._listening.is_set() else "not listening"
        return f"<InvalidationListener {self.cache.name!r} {state} losses={self.losses}>"
