"""The local copies of a CLIENT_CACHE connection (CONTRACT section 11): what may be served.

One :class:`ClientCache` per named connection per process, shared by its sync client and its
asyncio clients of every event loop. It holds replies of the reads listed in
:data:`redis_conn.cached_reads.CACHED_READS`, per Redis key, least recently used first, within
``MAX_ENTRIES`` and ``MAX_BYTES``. It serves nothing unless its
:class:`~redis_conn.invalidations.InvalidationListener` is listening, and it is emptied
whenever the listener may have missed an invalidation.

The rules that keep a local copy correct:

- **Only while listening.** Every copy was stored while the listener's tracking was on; the
  listener losing its connection (or a fork, or a reconnect) empties the cache and starts a
  new *epoch*: a read sent in an earlier epoch is never stored.
- **A read that races an invalidation is not stored.** A read marks its keys *in flight*
  before it is sent; an invalidation of a key in flight *poisons* it, and a reply for a
  poisoned key is returned to its caller but not kept.
- **A process reads its own writes.** A write through any client or pipeline of the connection
  drops the local copies of every argument that is a key in the cache, and poisons reads of
  those keys in flight, before the write returns (:meth:`ClientCache.wrote`).

Hits take no lock (one dictionary lookup under the GIL); everything that changes the cache
holds the cache's lock.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any, Final, NamedTuple

from redis_conn import messages
from redis_conn.client_cache_settings import CacheSettings
from redis_conn.read_only import may_resend

__all__ = ["LOCAL_READS", "MISSING", "ClientCache", "LocalRead"]

#: Where reads answered locally are written down while something listens (the debug-toolbar
#: panel sets a list here for a request): ``(connection name, "GET key")``, never a value.
LOCAL_READS: ContextVar[list[LocalRead] | None] = ContextVar("redis_conn_local_reads", default=None)


class LocalRead(NamedTuple):
    connection: str
    command: str


#: What a copy costs beyond its key and value bytes (the dictionaries that hold it).
ENTRY_OVERHEAD: Final = 100


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: What :meth:`ClientCache.local` returns when there is no valid local copy.
MISSING: Final = _Missing()


def _size(value: Any) -> int:
    """Roughly what a reply occupies, from its byte strings."""
    if isinstance(value, bytes | str):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(k) + _size(v) + 16 for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(_size(v) + 8 for v in value)
    return 8


def _copy(value: Any) -> Any:
    """What a hit returns: containers copied (a caller may change its own reply)."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


_live_caches: weakref.WeakSet[ClientCache] = weakref.WeakSet()


def _empty_inherited_caches() -> None:
    # A forked child has no listener thread and may have missed invalidations since it was
    # forked: everything it inherited is dropped, and the next read starts a listener.
    for cache in list(_live_caches):
        cache.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_empty_inherited_caches)


def _not_served(key: Any) -> bytes:
    raise RuntimeError("A ClientCache serves no client yet: call its serve(client) first.")


class ClientCache:
    """The local copies of one named connection (see the module docstring)."""

    def __init__(
        self,
        name: str,
        settings: CacheSettings,
        *,
        first_wait: float = 0.0,
    ) -> None:
        self.name = name
        self.settings = settings
        #: How the connection's clients turn a key into bytes (their encoder's, set by
        #: :meth:`serve`).
        self.encode: Callable[[Any], bytes] = _not_served
        self.encoding = "utf-8"
        self.encoding_errors = "strict"
        #: Whether the clients decode replies (OPTIONS' decode_responses).
        self.decodes = False
        #: How long a sync client's first read waits for the listener (once per listener).
        self.first_wait = first_wait
        self._lock = threading.RLock()
        self._store: OrderedDict[bytes, dict[tuple[Any, ...], Any]] = OrderedDict()
        self._sizes: dict[bytes, tuple[int, int]] = {}  # key -> (entries, bytes)
        self._inflight: dict[bytes, int] = {}
        self._poisoned: set[bytes] = set()
        self._epoch = 0
        self._listening = False
        #: Until when (``time.monotonic()``) the listener vouches for what is kept: it moves
        #: this forward each time it finds nothing unread on its socket (see
        #: :mod:`redis_conn.invalidations`). Past it, nothing is answered locally.
        self.fresh_until = 0.0
        self._longest_key = 0
        self.entries = 0
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        self.flushes = 0
        #: Set by the client builder: starts (once) and watches the invalidation listener.
        self.listener: Any = None
        _live_caches.add(self)

    # -- serving ------------------------------------------------------------------------------

    def serve(self, client: Any) -> None:
        """Answer ``client``'s reads (a redis-py client of this connection) from here."""
        encoder = client.get_encoder()
        self.encode = encoder.encode
        self.encoding = str(encoder.encoding)
        self.encoding_errors = str(encoder.encoding_errors)
        self.decodes = bool(client.connection_pool.connection_kwargs.get("decode_responses"))
        client.client_cache = self

    def local(self, key: bytes, what: tuple[Any, ...]) -> Any:
        """The local copy of ``what`` (a read of ``key``), or :data:`MISSING`. No lock: a copy
        removed by another thread meanwhile was valid when it was looked up."""
        bucket = self._store.get(key)
        if bucket is not None:
            value = bucket.get(what, MISSING)
            if value is not MISSING:
                try:  # noqa: SIM105 (a with block costs a hit twice the time)
                    self._store.move_to_end(key)
                except KeyError:  # dropped meanwhile: it was still valid when found
                    pass
                return _copy(value)
        return MISSING

    def vouch(self) -> bool:
        """The listener's window is closed: whether, having looked at what arrived, the cache
        may answer (see :meth:`InvalidationListener.vouch`)."""
        listener = self.listener
        return self._listening and listener is not None and bool(listener.vouch())

    def cacheable(self, key: bytes) -> bool:
        prefixes = self.settings.prefixes
        return not prefixes or key.startswith(prefixes)

    def begin(self, keys: Iterable[bytes], wait: float = 0.0) -> int | None:
        """Mark ``keys`` in flight before their read is sent; the ticket to :meth:`finish`
        with, or None when nothing may be stored (not listening). ``wait``: how long the
        first read of a sync client waits for a listener that was never up (once)."""
        self.misses += 1
        if not self._listening:
            listener = self.listener
            if listener is None:
                return None
            listener.start_once()
            if wait:
                listener.wait_first(wait)
            if not self._listening:
                return None
        self._lock.acquire()
        try:
            inflight = self._inflight
            for key in keys:
                inflight[key] = inflight.get(key, 0) + 1
                if len(key) > self._longest_key:  # a write of it must find it (wrote())
                    self._longest_key = len(key)
            return self._epoch
        finally:
            self._lock.release()

    def finish(
        self,
        ticket: int | None,
        keys: Iterable[bytes],
        replies: Iterable[tuple[bytes, tuple[Any, ...], Any]] = (),
    ) -> None:
        """The read of ``keys`` is over; keep ``replies`` (key, what, value) unless the read
        raced an invalidation or a flush. Call it for every :meth:`begin` with a ticket."""
        if ticket is None:
            return
        self._lock.acquire()
        try:
            current = ticket == self._epoch and self._listening
            poisoned = self._poisoned
            if current:
                for key, what, value in replies:
                    if key not in poisoned:
                        self._keep(key, what, value)
            inflight = self._inflight
            for key in keys:
                left = inflight.get(key, 0) - 1
                if left > 0:
                    inflight[key] = left
                else:
                    inflight.pop(key, None)
                    poisoned.discard(key)
        finally:
            self._lock.release()

    def _keep(self, key: bytes, what: tuple[Any, ...], value: Any) -> None:
        size = _size(value) + ENTRY_OVERHEAD
        if size > self.settings.largest_value:
            return
        bucket = self._store.get(key)
        count, used = self._sizes.get(key, (0, len(key)))
        if bucket is None:
            bucket = self._store[key] = {}
        else:
            self._store.move_to_end(key)
        old = bucket.get(what, MISSING)
        if old is not MISSING:
            count -= 1
            used -= _size(old) + ENTRY_OVERHEAD
        bucket[what] = value
        count += 1
        used += size
        previous = self._sizes.get(key, (0, 0))
        self._sizes[key] = (count, used)
        self.entries += count - previous[0]
        self.bytes += used - previous[1]
        if len(key) > self._longest_key:
            self._longest_key = len(key)
        self._evict()

    def _evict(self) -> None:
        settings = self.settings
        while self._store and (
            self.entries > settings.max_entries or self.bytes > settings.max_bytes
        ):
            key, _ = self._store.popitem(last=False)
            count, used = self._sizes.pop(key)
            self.entries -= count
            self.bytes -= used

    # -- invalidating -------------------------------------------------------------------------

    def invalidate(self, keys: Iterable[bytes]) -> None:
        """The server says ``keys`` changed (or this process wrote them): drop their copies,
        poison their reads in flight."""
        self._lock.acquire()
        try:
            self._drop(keys)
        finally:
            self._lock.release()

    def _drop(self, keys: Iterable[bytes]) -> None:
        store, inflight = self._store, self._inflight
        for key in keys:
            if store.pop(key, None) is not None:
                count, used = self._sizes.pop(key)
                self.entries -= count
                self.bytes -= used
                self.invalidations += 1
            if key in inflight:
                self._poisoned.add(key)

    def wrote(self, args: tuple[Any, ...]) -> None:
        """A command that may write ran (or failed: it may have run): drop the copies of
        every argument that is a key of the cache. Over-dropping is harmless; keys are found
        by value, so no command table is needed (a value can never be longer than the
        longest key kept, or it is not looked up)."""
        longest = self._longest_key
        if not self._store and not self._inflight:
            return
        encode = self.encode
        name = args[0]
        if isinstance(name, str | bytes) and _upper(name) in _FLUSHING:
            self.flush()
            return
        keys = []
        for arg in args[1:]:
            if isinstance(arg, bytes):
                if len(arg) <= longest:
                    keys.append(arg)
            elif isinstance(arg, str):
                if len(arg) <= longest:
                    keys.append(encode(arg))
            elif isinstance(arg, int | float) and not isinstance(arg, bool):
                keys.append(encode(arg))
        if keys:
            self.invalidate(keys)

    def wrote_all(self, commands: Iterable[tuple[Any, ...]]) -> None:
        """:meth:`wrote` for each command of a batch that is not a known read."""
        for args in commands:
            if args and not may_resend(args):
                self.wrote(args)

    def flush(self) -> None:
        """Drop every copy and every read in flight (they are never stored)."""
        self._lock.acquire()
        try:
            self._flush()
        finally:
            self._lock.release()

    def _flush(self) -> None:
        self._store = OrderedDict()
        self._sizes = {}
        self.entries = 0
        self.bytes = 0
        self._epoch += 1
        self._poisoned = set(self._inflight)
        self.flushes += 1

    # -- the listener's state -------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self._listening

    def listening_started(self) -> None:
        """Tracking is on: from now on reads may be kept (the cache starts empty)."""
        self._lock.acquire()
        try:
            self._flush()
            self._listening = True
        finally:
            self._lock.release()

    def listening_lost(self) -> None:
        """Invalidations may have been missed: serve nothing more from what is kept."""
        self.fresh_until = 0.0
        self._lock.acquire()
        try:
            self._listening = False
            self._flush()
        finally:
            self._lock.release()

    def after_fork_in_child(self) -> None:
        self.fresh_until = 0.0
        self._lock = threading.RLock()
        self._inflight = {}
        self._listening = False
        self._flush()
        if self.listener is not None:
            self.listener = self.listener.forked()

    def close(self) -> None:
        """Stop listening and drop everything (the registry closes its connections)."""
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.stop()
        self.listening_lost()

    # -- the report -----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """The health report's ``client_cache`` (CONTRACT section 11)."""
        return {
            "entries": self.entries,
            "bytes": self.bytes,
            "hits": self.hits,
            "misses": self.misses,
            "invalidations": self.invalidations,
            "flushes": self.flushes,
        }

    def report(self) -> dict[str, Any]:
        """:meth:`stats`, with whether the cache is listening (the health report's entry)."""
        listener = self.listener
        return {
            **self.stats(),
            "listening": self._listening,
            "max_entries": self.settings.max_entries,
            "max_bytes": self.settings.max_bytes,
            "listener_losses": 0 if listener is None else listener.losses,
        }

    def not_listening_reason(self) -> str:
        """Why nothing is served locally, for the health report."""
        listener = self.listener
        error = None if listener is None else listener.last_error
        reason = "the client cache is not listening for invalidations (reads go to the server)"
        return f"{reason}: {messages.unprefixed(self.name, error)}" if error else reason

    def __repr__(self) -> str:
        state = "listening" if self._listening else "not listening"
        return f"<ClientCache {self.name!r} {state} entries={self.entries} bytes={self.bytes}>"


# Commands after which nothing kept can be trusted (they change keys wholesale).
_FLUSHING = frozenset({"FLUSHDB", "FLUSHALL", "SWAPDB", "SELECT"})


def _upper(name: str | bytes) -> str:
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return name.upper()
