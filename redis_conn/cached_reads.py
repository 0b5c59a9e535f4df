"""Clients of a CLIENT_CACHE connection: the reads of CONTRACT section 11 answered locally.

GET, MGET, HGET, HMGET, HGETALL, EXISTS and STRLEN through ``get_redis(name)`` and
``get_async_redis(name)`` (pooled and MULTIPLEX) look in the connection's
:class:`~redis_conn.client_cache.ClientCache` first; a miss goes to the server as before and
its reply is kept by the cache's rules. Any other command that is not a known read drops the
local copies of the keys among its arguments when it returns (or fails: it may have run), and
so do pipelines, for each of their commands.

A local copy is the reply as redis-py returned it (response callbacks applied), per key and
per read (``HGET k f`` and ``HGET k g`` are two copies of key ``k``), and per decoding (the
Django cache reads undecoded). MGET's answers are kept per key, so a later GET of one of
them is local too (and the other way round, except a missing key: GET of a key that holds
another type is an error, MGET's answer for it is None).
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn.client_cache import LOCAL_READS, MISSING, ClientCache, LocalRead
from redis_conn.internals import NEVER_DECODE
from redis_conn.multiplex_client import MultiplexedRedis
from redis_conn.named_clients import AsyncNamedRedis, NamedRedis
from redis_conn.read_only import command_name, may_resend

__all__ = [
    "CACHED_READS",
    "CachedAsyncRedis",
    "CachedMultiplexedRedis",
    "CachedRedis",
    "ReadPlan",
    "plan_read",
]

NETWORK_ERRORS = (RedisConnectionError, RedisTimeoutError)
_SINGLE = 1  # one key, its reply kept whole
_MGET = 2
_EXISTS = 3

#: The reads a client cache answers, as redis-py's methods name them.
CACHED_READS: dict[str, int] = {
    "GET": _SINGLE,
    "HGET": _SINGLE,
    "HMGET": _SINGLE,
    "HGETALL": _SINGLE,
    "STRLEN": _SINGLE,
    "MGET": _MGET,
    "EXISTS": _EXISTS,
}
# Every spelling redis-py or a caller may use -> (kind, the name as kept).
_LOOKUP: dict[Any, tuple[int, str]] = {
    spelling: (kind, name)
    for name, kind in CACHED_READS.items()
    for spelling in (name, name.lower(), name.encode(), name.lower().encode())
}
_GET_WHATS = {True: ("GET", True), False: ("GET", False)}
_MGET_WHATS = {True: ("MGET", True), False: ("MGET", False)}
_EXISTS_WHATS = {True: ("EXISTS", True), False: ("EXISTS", False)}


class ReadPlan:
    """One cacheable read: its keys, and how its reply is found and kept per key."""

    __slots__ = ("decoded", "keys", "kind", "what")

    def __init__(self, kind: int, keys: list[bytes], what: tuple[Any, ...], decoded: bool):
        self.kind = kind
        self.keys = keys
        self.what = what
        self.decoded = decoded

    def local(self, cache: ClientCache) -> Any:
        """The answer from local copies, or MISSING."""
        if self.kind == _SINGLE:
            key = self.keys[0]
            value = cache.local(key, self.what)
            if value is MISSING and self.what[0] == "GET" and cache.entries:
                value = cache.local(key, _MGET_WHATS[self.decoded])
                if value is None:
                    return MISSING
            return value
        answers = []
        for key in self.keys:
            if self.kind == _MGET:
                value = cache.local(key, _MGET_WHATS[self.decoded])
                if value is MISSING:
                    value = cache.local(key, _GET_WHATS[self.decoded])
            else:
                value = cache.local(key, _EXISTS_WHATS[self.decoded])
            if value is MISSING:
                return MISSING
            answers.append(value)
        return answers if self.kind == _MGET else sum(answers)

    def replies(self, reply: Any) -> list[tuple[bytes, tuple[Any, ...], Any]]:
        """What to keep of the server's ``reply``: (key, what, value) for each key."""
        if self.kind == _SINGLE:
            return [(self.keys[0], self.what, reply)]
        if self.kind == _MGET:
            if not isinstance(reply, list) or len(reply) != len(self.keys):
                return []
            what = _MGET_WHATS[self.decoded]
            return [(key, what, value) for key, value in zip(self.keys, reply, strict=True)]
        if len(self.keys) == 1 and isinstance(reply, int):  # EXISTS of several: not split
            return [(self.keys[0], self.what, reply)]
        return []


def command_label(args: tuple[Any, ...]) -> str:
    """``GET user:1``: a read's name and first key, as error messages show them (no value)."""
    key = args[1]
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    more = " ..." if len(args) > 2 else ""
    return f"{command_name(args)} {str(key)[:80]}{more}"


def plan_read(
    cache: ClientCache, args: tuple[Any, ...], options: dict[str, Any], decodes: bool
) -> ReadPlan | None:
    """The plan of ``args`` if it is a read the cache answers, else None."""
    try:
        kind, name = _LOOKUP[args[0]]
    except (KeyError, TypeError):  # not a cached read; TypeError: an unhashable name
        return None
    if len(args) < 2:
        return None
    decoded = decodes
    for option in options:
        if option == NEVER_DECODE:
            decoded = False
        elif option != "keys":
            return None  # a reply shaped by an option (a callback's) is not kept
    encode = cache.encode
    try:
        if kind == _SINGLE:
            key = args[1]
            if type(key) is str:  # the usual key: what the encoder does, without its checks
                key = key.encode(cache.encoding, cache.encoding_errors)
            elif type(key) is not bytes:
                key = encode(key)
            if len(args) == 2:
                what = _GET_WHATS[decoded] if name == "GET" else (name, decoded)
            else:
                what = (name, decoded, *args[2:])
                hash(what)
            keys = [key]
        else:
            keys = [k if type(k) is bytes else encode(k) for k in args[1:]]
            what = _EXISTS_WHATS[decoded]
    except Exception:  # an argument redis-py would refuse: it goes to the server, as given
        return None
    if cache.settings.prefixes and not all(cache.cacheable(key) for key in keys):
        return None
    return ReadPlan(kind, keys, what, decoded)


class _SyncCachedReads:
    """Mixed in front of a sync client class: reads answered locally, writes drop copies."""

    client_cache: ClientCache
    connection_pool: Any

    def execute_command(self, *args: Any, **options: Any) -> Any:
        cache = self.client_cache
        plan = plan_read(cache, args, options, cache.decodes)
        if plan is None:
            run: Callable[..., Any] = super().execute_command  # type: ignore[misc]
            try:
                return run(*args, **options)
            except NETWORK_ERRORS:
                cache.flush()  # a reconnect, maybe a failover: start over from the server
                raise
            finally:
                if not may_resend(args):
                    cache.wrote(args)
        fresh = monotonic() < cache.fresh_until or cache.vouch()
        value = plan.local(cache) if fresh else MISSING
        if value is not MISSING:
            cache.hits += 1
            recorder = LOCAL_READS.get()
            if recorder is not None:
                recorder.append(LocalRead(cache.name, command_label(args)))
            return value
        run = super().execute_command  # type: ignore[misc]
        ticket = cache.begin(plan.keys, wait=cache.first_wait)
        kept: list[Any] = []
        try:
            reply = run(*args, **options)
            kept = plan.replies(reply)
            return reply
        except NETWORK_ERRORS:
            cache.flush()  # a reconnect, maybe a failover: start over from the server
            raise
        finally:
            cache.finish(ticket, plan.keys, kept)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)  # type: ignore[misc]
        pipe.client_cache = self.client_cache
        return pipe


class _AsyncCachedReads:
    """Mixed in front of an asyncio client class: reads answered locally, writes drop copies."""

    client_cache: ClientCache
    connection_pool: Any

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        cache = self.client_cache
        plan = plan_read(cache, args, options, cache.decodes)
        if plan is None:
            run: Callable[..., Any] = super().execute_command  # type: ignore[misc]
            try:
                return await run(*args, **options)
            except NETWORK_ERRORS:
                cache.flush()  # a reconnect, maybe a failover: start over from the server
                raise
            finally:
                if not may_resend(args):
                    cache.wrote(args)
        fresh = monotonic() < cache.fresh_until or cache.vouch()
        value = plan.local(cache) if fresh else MISSING
        if value is not MISSING:
            cache.hits += 1
            recorder = LOCAL_READS.get()
            if recorder is not None:
                recorder.append(LocalRead(cache.name, command_label(args)))
            return value
        run = super().execute_command  # type: ignore[misc]
        ticket = cache.begin(plan.keys)  # no wait: the loop must not block
        kept: list[Any] = []
        try:
            reply = await run(*args, **options)
            kept = plan.replies(reply)
            return reply
        except NETWORK_ERRORS:
            cache.flush()  # a reconnect, maybe a failover: start over from the server
            raise
        finally:
            cache.finish(ticket, plan.keys, kept)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)  # type: ignore[misc]
        pipe.client_cache = self.client_cache
        return pipe


class CachedRedis(_SyncCachedReads, NamedRedis):
    """The sync client of a CLIENT_CACHE connection."""


class CachedAsyncRedis(_AsyncCachedReads, AsyncNamedRedis):  # type: ignore[misc]
    """The pooled asyncio client of a CLIENT_CACHE connection."""


class CachedMultiplexedRedis(_AsyncCachedReads, MultiplexedRedis):  # type: ignore[misc]
    """The MULTIPLEX asyncio client of a CLIENT_CACHE connection."""
