"""A Django cache backend on a named connection (CONTRACT section 7).

::

    CACHES = {"default": {"BACKEND": "redis_conn.django.cache.RedisCache", "LOCATION": "cache"}}

``LOCATION`` names a connection of ``REDIS_CONNECTIONS`` (absent: ``"default"``); every call
uses ``redis_conn.get_redis(LOCATION)``, or ``get_async_redis(LOCATION)`` for the async methods,
so the cache and raw Redis code share one pool per process. Keys and values are stored as
Django's ``RedisCache`` and django-redis store them (``prefix:version:key``; ints raw, the rest
pickled), so switching backends keeps the cache warm.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.core.cache import caches
from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    MEMCACHE_MAX_KEY_LENGTH,
    BaseCache,
    InvalidCacheBackendError,
)
from django.core.exceptions import SynchronousOnlyOperation
from redis.client import NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from redis_conn.clients import Client
from redis_conn.django.cache_keys import KeyReverser, key_pattern
from redis_conn.django.cache_options import (
    OPTION_KEYS,
    caches_by_connection,
    codec,
    option_problems,
)
from redis_conn.masking import mask_text
from redis_conn.registry import connections, current_registry, get_async_redis, get_redis

T = TypeVar("T")

__all__ = [
    "OPTION_KEYS",
    "RedisCache",
    "caches_by_connection",
    "get_redis_connection",
    "option_problems",
]

logger = logging.getLogger("redis_conn.cache")

#: A down server, a full pool, a timeout: what IGNORE_EXCEPTIONS turns into a miss.
NETWORK_ERRORS = (RedisConnectionError, RedisTimeoutError)
SCAN_COUNT = 1000
_NEVER_DECODE = {NEVER_DECODE: True}  # values are bytes even where OPTIONS decode_responses
# Raise ValueError for a missing key, as Django's RedisCache does; nil is a missing key.
_INCR_EXISTING = (
    "if redis.call('EXISTS', KEYS[1]) == 1 then "
    "return redis.call('INCRBY', KEYS[1], ARGV[1]) end return false"
)
_MEMCACHE_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


_followed = False


def _follow_django_settings() -> None:
    # Without "redis_conn.django" in INSTALLED_APPS nobody pointed the process-wide registry at
    # REDIS_CONNECTIONS: do what the app's ready() does, unless someone configured it already.
    # Looked at once per process, by the first cache made.
    global _followed
    _followed = True
    source = connections.source
    if source.loader is None and source.settings is None:
        from django.core.signals import setting_changed

        from redis_conn.django.apps import _setting_changed, install

        install()
        setting_changed.connect(_setting_changed, dispatch_uid="redis_conn.setting_changed")


class RedisCache(BaseCache):
    """Django's cache API, sync and natively async, on the connection named by LOCATION."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(params)
        if not isinstance(server, str):
            raise InvalidCacheBackendError(
                f"redis_conn's RedisCache takes the name of one connection of REDIS_CONNECTIONS "
                f"as LOCATION, not {server!r}."
            )
        self.connection_name = server or "default"
        options = params.get("OPTIONS", {})
        problems = option_problems(options)
        if problems:
            raise InvalidCacheBackendError(
                f"redis_conn's RedisCache on connection {self.connection_name!r}: "
                + " ".join(problems)
            )
        self._codec = codec(options)
        self._ignore_exceptions: bool = options.get("IGNORE_EXCEPTIONS", False)
        if not _followed:
            _follow_django_settings()

    def validate_key(self, key: str) -> None:
        # Django's CacheKeyWarning, looked for only where one is due: most keys get none.
        if len(key) > MEMCACHE_MAX_KEY_LENGTH or _MEMCACHE_UNSAFE.search(key):
            super().validate_key(key)

    @property
    def client(self) -> Client:
        """The connection's shared client (``redis_conn.get_redis(LOCATION)``)."""
        return get_redis(self.connection_name)

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> int | None:
        """Seconds for Redis: None never expires, 0 (or less) means "do not keep"."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else max(0, int(timeout))

    # -- the Django cache API ------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        try:
            client: Any = self.client
            value = client.execute_command("GET", key, **_NEVER_DECODE)
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "GET", key, default)
        return default if value is None else self._codec.loads(value)

    # Returns whether it stored (django-redis's contract), where Django's BaseCache says None.
    def set(  # type: ignore[override]
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        """Store ``value``; ``nx=True``: only if absent, ``xx=True``: only if present.

        Returns whether the value was stored (django-redis returns the same).
        """
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        data = self._codec.dumps(value)  # outside the try: a PickleError is the caller's
        try:
            if timeout == 0:
                return self._store_nothing(self.client, key, data, nx=nx)
            return bool(self.client.set(key, data, ex=timeout, nx=nx, xx=xx))
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "SET", key, False)

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return self.set(key, value, timeout, version, nx=True)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        client = self.client
        try:
            if timeout is not None:
                return bool(client.expire(key, timeout))
            # PERSIST says 0 for a key that had no expiry as well as for a missing one.
            return bool(client.persist(key)) or bool(client.exists(key))
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "TOUCH", key, False)

    def delete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        try:
            return bool(self.client.delete(key))
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "DEL", key, False)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        try:
            return bool(self.client.exists(key))
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "EXISTS", key, False)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        made = self.make_and_validate_key(key, version=version)
        client = self.client
        try:
            if self._is_fake():
                value = _incr_watched(client, made, delta)
            else:
                value = client.eval(_INCR_EXISTING, 1, made, delta)
        except NETWORK_ERRORS as exc:
            value = self._ignored(exc, "INCRBY", made, None)
        if value is None:
            raise ValueError(self._not_found(key))
        return int(value)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        key_map = {self.make_and_validate_key(key, version=version): key for key in keys}
        if not key_map:
            return {}
        made = list(key_map)
        client: Any = self.client
        try:
            if self._is_cluster(client):
                pipe: Any = client.pipeline()
                for key in made:
                    pipe.execute_command("GET", key, **_NEVER_DECODE)
                values = pipe.execute()
            else:
                values = client.execute_command("MGET", *made, **_NEVER_DECODE)
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "MGET", made[0], {})
        return self._found(key_map, made, values)

    def set_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        if not data:
            return []
        timeout = self.get_backend_timeout(timeout)
        encoded = {
            self.make_and_validate_key(key, version=version): self._codec.dumps(value)
            for key, value in data.items()
        }
        try:
            if timeout == 0:
                self.client.delete(*encoded)
                return []
            pipe = self.client.pipeline(transaction=False)
            for key, value in encoded.items():
                pipe.set(key, value, ex=timeout)
            pipe.execute()
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "SET", next(iter(encoded)), list(data))
        return []

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        if not made:
            return
        try:
            self.client.delete(*made)
        except NETWORK_ERRORS as exc:
            self._ignored(exc, "DEL", made[0], None)

    def clear(self) -> bool:  # type: ignore[override]  # django-redis returns whether it did
        """Delete this cache's keys (any version), not the whole database.

        Django's RedisCache and django-redis send FLUSHDB, which would also delete what other
        code keeps on the same connection; this scans for the cache's own keys instead, on
        every primary of a cluster. Returns whether anything was deleted.
        """
        return self._delete_matching(self._pattern("*", "*")) > 0

    def close(self, **kwargs: Any) -> None:
        """Nothing to close: the pool belongs to the process (``connections.close_all()``)."""

    # -- django-redis's extras -----------------------------------------------------------

    def ttl(self, key: Any, version: int | None = None) -> int | None:
        """Seconds to live; None when the key never expires, 0 when it does not exist."""
        key = self.make_and_validate_key(key, version=version)
        try:
            return _ttl(self.client.ttl(key))
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "TTL", key, 0)

    def expire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """Set the key's timeout (None: never expires, 0: gone now); False if it is absent."""
        return self.touch(key, timeout, version)

    def persist(self, key: Any, version: int | None = None) -> bool:
        """Make the key never expire; True when it had a timeout."""
        key = self.make_and_validate_key(key, version=version)
        try:
            return bool(self.client.persist(key))
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "PERSIST", key, False)

    def iter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> Iterator[str]:
        """This cache's keys matching the glob ``search``, by SCAN (every cluster primary)."""
        pattern = self._pattern(search, version)
        for key in self.client.scan_iter(match=pattern, count=itersize or SCAN_COUNT):
            yield self._reverse_key(key)

    def keys(self, search: str, version: int | None = None) -> list[str]:
        """Like :meth:`iter_keys`, as a list (by SCAN, never the blocking KEYS)."""
        return list(self.iter_keys(search, version=version))

    def delete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        itersize: int | None = None,
    ) -> int:
        """Delete this cache's keys matching the glob ``pattern``; returns how many."""
        return self._delete_matching(self._pattern(pattern, version, prefix), itersize)

    def lock(
        self,
        key: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> Any:
        """redis-py's ``Lock`` on the cache key of ``key`` (``with cache.lock("k"):``)."""
        return self.client.lock(
            self.make_and_validate_key(key, version=version),
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            thread_local=thread_local,
        )

    # -- async: natively on get_async_redis(LOCATION) --------------------------------------

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        try:
            value = await get_async_redis(self.connection_name).execute_command(
                "GET", key, **_NEVER_DECODE
            )
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "GET", key, default)
        return default if value is None else self._codec.loads(value)

    async def aset(  # type: ignore[override]  # a bool, as set()
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        try:
            data = self._codec.dumps(value)
        except SynchronousOnlyOperation:
            data = await self._adumps(value)
        client = get_async_redis(self.connection_name)
        try:
            if timeout == 0:
                return await self._astore_nothing(client, key, data, nx=nx)
            return bool(await client.set(key, data, ex=timeout, nx=nx, xx=xx))
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "SET", key, False)

    async def aadd(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return await self.aset(key, value, timeout, version, nx=True)

    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        client = get_async_redis(self.connection_name)
        try:
            if timeout is not None:
                return bool(await client.expire(key, timeout))
            return bool(await client.persist(key)) or bool(await client.exists(key))
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "TOUCH", key, False)

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        try:
            return bool(await get_async_redis(self.connection_name).delete(key))
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "DEL", key, False)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        try:
            return bool(await get_async_redis(self.connection_name).exists(key))
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "EXISTS", key, False)

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        made = self.make_and_validate_key(key, version=version)
        client = get_async_redis(self.connection_name)
        try:
            if self._is_fake():
                value = await _aincr_watched(client, made, delta)
            else:
                value = await client.eval(_INCR_EXISTING, 1, made, delta)
        except NETWORK_ERRORS as exc:
            value = self._ignored(exc, "INCRBY", made, None)
        if value is None:
            raise ValueError(self._not_found(key))
        return int(value)

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await self.aincr(key, -delta, version)

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        key_map = {self.make_and_validate_key(key, version=version): key for key in keys}
        if not key_map:
            return {}
        made = list(key_map)
        client = get_async_redis(self.connection_name)
        try:
            if self._is_cluster(client):
                pipe: Any = client.pipeline()
                for key in made:
                    pipe.execute_command("GET", key, **_NEVER_DECODE)
                values = await pipe.execute()
            else:
                values = await client.execute_command("MGET", *made, **_NEVER_DECODE)
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "MGET", made[0], {})
        return self._found(key_map, made, values)

    async def aset_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        if not data:
            return []
        timeout = self.get_backend_timeout(timeout)
        encoded = {
            self.make_and_validate_key(key, version=version): await self._adumps(value)
            for key, value in data.items()
        }
        client = get_async_redis(self.connection_name)
        try:
            if timeout == 0:
                await client.delete(*encoded)
                return []
            pipe = client.pipeline(transaction=False)
            for key, value in encoded.items():
                pipe.set(key, value, ex=timeout)
            await pipe.execute()
        except NETWORK_ERRORS as exc:
            return self._ignored(exc, "SET", next(iter(encoded)), list(data))
        return []

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        if not made:
            return
        try:
            await get_async_redis(self.connection_name).delete(*made)
        except NETWORK_ERRORS as exc:
            self._ignored(exc, "DEL", made[0], None)

    async def aget_or_set(
        self, key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Any:
        value = await self.aget(key, self._missing_key, version=version)
        if value is self._missing_key:
            if callable(default):
                default = default()
            await self.aadd(key, default, timeout=timeout, version=version)
            # Read again: another caller may have added a value between aget() and aadd().
            return await self.aget(key, default, version=version)
        return value

    async def aincr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        if version is None:
            version = self.version
        value = await self.aget(key, self._missing_key, version=version)
        if value is self._missing_key:
            raise ValueError(self._not_found(key))
        await self.aset(key, value, version=version + delta)
        await self.adelete(key, version=version)
        return version + delta

    async def adecr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await self.aincr_version(key, -delta, version)

    async def aclear(self) -> bool:  # type: ignore[override]  # as clear()
        """See :meth:`clear`."""
        client = get_async_redis(self.connection_name)
        deleted, batch = 0, []
        async for key in client.scan_iter(match=self._pattern("*", "*"), count=SCAN_COUNT):
            batch.append(key)
            if len(batch) >= SCAN_COUNT:
                deleted += await client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await client.unlink(*batch)
        return deleted > 0

    async def aclose(self, **kwargs: Any) -> None:
        """Nothing to close: the asyncio clients belong to their event loop."""

    # -- internals -------------------------------------------------------------------------

    async def _adumps(self, value: Any) -> bytes | int:
        try:
            return self._codec.dumps(value)
        except SynchronousOnlyOperation:
            # Pickling touched the database (an unevaluated QuerySet), which Django allows
            # only off the event loop: serialize in a thread, as Django's default aset() does.
            return await sync_to_async(self._codec.dumps)(value)

    def _store_nothing(self, client: Any, key: str, data: Any, *, nx: bool) -> bool:
        # A timeout of 0 stores nothing; add() still says whether the key was absent.
        if nx:
            added = bool(client.set(key, data, nx=True))
            if added:
                client.delete(key)
            return added
        client.delete(key)
        return False

    async def _astore_nothing(self, client: Any, key: str, data: Any, *, nx: bool) -> bool:
        if nx:
            added = bool(await client.set(key, data, nx=True))
            if added:
                await client.delete(key)
            return added
        await client.delete(key)
        return False

    def _found(self, key_map: dict[str, Any], made: list[str], values: list[Any]) -> dict[Any, Any]:
        loads = self._codec.loads
        return {
            key_map[key]: loads(value)
            for key, value in zip(made, values, strict=True)
            if value is not None
        }

    def _delete_matching(self, pattern: str, itersize: int | None = None) -> int:
        client = self.client
        count = itersize or SCAN_COUNT
        deleted, batch = 0, []
        for key in client.scan_iter(match=pattern, count=count):
            batch.append(key)
            if len(batch) >= count:
                deleted += client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += client.unlink(*batch)
        return deleted

    def _pattern(self, search: str, version: Any = None, prefix: str | None = None) -> str:
        """The glob for keys of this cache matching ``search`` (as django-redis makes it)."""
        prefix = self.key_prefix if prefix is None else prefix
        version = self.version if version is None else version
        pattern = key_pattern(self.key_func, prefix, search, version)
        if search == "*" and "*" not in pattern:
            raise ValueError(
                f"The cache on Redis connection {self.connection_name!r} cannot find its keys: "
                "its KEY_FUNCTION does not put the key into the Redis key."
            )
        return pattern

    @cached_property
    def _reverse_key(self) -> KeyReverser:
        """The key a caller used, from a Redis key (for keys() and iter_keys())."""
        return KeyReverser(self.key_func, self.key_prefix)

    def _is_fake(self) -> bool:
        return current_registry().spec(self.connection_name).kind == "fake"

    @staticmethod
    def _is_cluster(client: Any) -> bool:
        return hasattr(client, "nodes_manager")

    def _not_found(self, key: Any) -> str:
        return f"Key {key!r} not found in the cache on Redis connection {self.connection_name!r}."

    def _ignored(self, exc: Exception, command: str, key: str, result: T) -> T:
        """Re-raise, or with IGNORE_EXCEPTIONS log and return the miss value ``result``."""
        if not self._ignore_exceptions:
            raise exc
        logger.warning(
            "Cache on Redis connection %r: %s %r failed, treated as a miss (IGNORE_EXCEPTIONS): "
            "%s: %s",
            self.connection_name,
            command,
            key,
            type(exc).__name__,
            mask_text(str(exc)),
        )
        return result

    def __repr__(self) -> str:
        return f"<RedisCache on Redis connection {self.connection_name!r}>"


def get_redis_connection(alias: str = "default", write: bool = True) -> Client:
    """The client behind ``caches[alias]`` (django-redis's function of the same name).

    ``write`` is accepted for django-redis's callers; reads and writes share one client.
    """
    cache = caches[alias]
    if not isinstance(cache, RedisCache):
        raise ValueError(
            f"CACHES[{alias!r}] is {type(cache).__module__}.{type(cache).__qualname__}, not "
            "redis_conn.django.cache.RedisCache, so it has no Redis connection to return."
        )
    return cache.client


def _ttl(seconds: int) -> int | None:
    if seconds == -1:
        return None
    return max(seconds, 0)  # -2: no such key


def _incr_watched(client: Any, key: str, delta: int) -> int | None:
    # FAKE connections have no Lua unless lupa is installed: WATCH gives the same guarantee.
    with client.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                if not pipe.exists(key):
                    pipe.unwatch()
                    return None
                pipe.multi()
                pipe.incrby(key, delta)
                return int(pipe.execute()[0])
            except WatchError:
                continue


async def _aincr_watched(client: Any, key: str, delta: int) -> int | None:
    async with client.pipeline() as pipe:
        while True:
            try:
                await pipe.watch(key)
                if not await pipe.exists(key):
                    await pipe.unwatch()
                    return None
                pipe.multi()
                pipe.incrby(key, delta)
                return int((await pipe.execute())[0])
            except WatchError:
                continue
