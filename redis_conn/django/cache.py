"""A Django cache backend on a named connection (CONTRACT section 7).

::

    CACHES = {"default": {"BACKEND": "redis_conn.django.cache.RedisCache", "LOCATION": "cache"}}

``LOCATION`` names a connection of ``REDIS_CONNECTIONS`` (absent: ``"default"``); every call
uses ``redis_conn.get_redis(LOCATION)``, or ``get_async_redis(LOCATION)`` for the async methods,
so the cache and raw Redis code share one pool per process. Keys and values are stored as
Django's ``RedisCache`` and django-redis store them (``prefix:version:key``; ints raw, the rest
pickled), so switching backends keeps the cache warm. django-redis's extras and data
structures come from :mod:`.cache_extras` and :mod:`.cache_structures`, its ``cache.client``
from :mod:`.cache_client`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import cached_property
from typing import Any, TypeVar

from django.core.cache import caches
from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    MEMCACHE_MAX_KEY_LENGTH,
    BaseCache,
    InvalidCacheBackendError,
    get_key_func,
)

from redis_conn import messages
from redis_conn.clients import Client
from redis_conn.codecs import Codec
from redis_conn.django.cache_async import AsyncMethodsMixin
from redis_conn.django.cache_client import CacheClient
from redis_conn.django.cache_extras import KeyMethodsMixin
from redis_conn.django.cache_incr import incr
from redis_conn.django.cache_keys import key_pattern
from redis_conn.django.cache_omit import (
    CALL_DEFAULT,
    NETWORK_ERRORS,
    first_key,
    omit_exception,
)
from redis_conn.django.cache_options import (
    OPTION_KEYS,
    codec,
    error_policy,
    option_problems,
    scan_itersize,
)
from redis_conn.django.cache_structures import StructuresMixin
from redis_conn.django.conf import caches_on, follow_settings
from redis_conn.internals import NEVER_DECODE
from redis_conn.masking import mask_text
from redis_conn.registry import current_registry, get_async_redis, get_redis

T = TypeVar("T")

__all__ = [
    "NETWORK_ERRORS",
    "OPTION_KEYS",
    "RedisCache",
    "caches_by_connection",
    "get_redis_connection",
    "option_problems",
]

logger = logging.getLogger("redis_conn.cache")

SCAN_COUNT = 1000
_NEVER_DECODE = {NEVER_DECODE: True}  # values are bytes even where OPTIONS decode_responses
_MEMCACHE_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


# aset, adelete_many and aclear return what set, delete_many and clear return (django-redis's
# contract), where Django's BaseCache says None: hence the ignore.
class RedisCache(  # type: ignore[misc]
    StructuresMixin, KeyMethodsMixin, AsyncMethodsMixin, BaseCache
):
    """Django's cache API, sync and natively async, on the connection named by LOCATION."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(params)
        # Never raises: Django builds every cache inside its own system checks, and a bad
        # OPTIONS must reach the user as redis_conn.E020, not as a traceback. The problems
        # are raised at first use instead (InvalidCacheBackendError).
        self.connection_name = server if isinstance(server, str) and server else "default"
        options = params.get("OPTIONS", {})
        self._problems = option_problems(options)
        self._bad_location = None if isinstance(server, str) else server
        self._options: dict[str, Any] = options if isinstance(options, dict) else {}
        policy = error_policy(self._options)
        self._ignore_exceptions = policy.ignore
        self._log_ignored_exceptions = policy.log_ignored
        #: django-redis's logger (DJANGO_REDIS_LOGGER) for LOG_IGNORED_EXCEPTIONS.
        self.logger = logging.getLogger(policy.logger_name)
        self._itersize = scan_itersize(SCAN_COUNT)
        reverse = params.get("REVERSE_KEY_FUNCTION")  # django-redis's, for custom KEY_FUNCTIONs
        self._reverse_key_func = get_key_func(reverse) if reverse else None
        # Without "redis_conn.django" in INSTALLED_APPS nobody pointed the process-wide
        # registry at REDIS_CONNECTIONS: the first cache made does (see follow_settings).
        follow_settings(unless_configured=True)

    def validate_key(self, key: str) -> None:
        # Django's CacheKeyWarning, looked for only where one is due: most keys get none.
        if len(key) > MEMCACHE_MAX_KEY_LENGTH or _MEMCACHE_UNSAFE.search(key):
            super().validate_key(key)

    @cached_property
    def client(self) -> CacheClient:
        """django-redis's ``cache.client``: ``get_client(write=True)`` is the connection's
        client (``redis_conn.get_redis(LOCATION)``); also ``make_key``, ``encode``, ``decode``."""
        return CacheClient(self)

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> int | None:
        """Seconds for Redis: None never expires, 0 (or less) means "do not keep"."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else max(0, int(timeout))

    # -- the Django cache API (with django-redis's client= and extras) -------------------------

    @omit_exception("GET", CALL_DEFAULT)
    def get(
        self, key: Any, default: Any = None, version: int | None = None, client: Any = None
    ) -> Any:
        key = self.make_and_validate_key(key, version=version)
        value = self._redis(client).execute_command("GET", key, **_NEVER_DECODE)
        return default if value is None else self._codec.loads(value)

    # Returns whether it stored (django-redis's contract), where Django's BaseCache says None.
    @omit_exception("SET", False)
    def set(  # type: ignore[override]
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        """Store ``value``; ``nx=True``: only if absent, ``xx=True``: only if present.

        Returns whether the value was stored (django-redis returns the same).
        """
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        redis = self._redis(client)
        data = self._codec.dumps(value)
        if timeout == 0:
            return self._store_nothing(redis, key, data, nx=nx)
        return bool(redis.set(key, data, ex=timeout, nx=nx, xx=xx))

    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> bool:
        return self.set(key, value, timeout, version, client, nx=True)

    def touch(
        self,
        key: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> bool:
        return self.expire(key, timeout, version, client)

    @omit_exception("DEL", False)
    def delete(
        self,
        key: Any,
        version: int | None = None,
        prefix: str | None = None,
        client: Any = None,
    ) -> bool:
        return bool(self._redis(client).delete(self._made(key, version, prefix)))

    @omit_exception("EXISTS", False)
    def has_key(self, key: Any, version: int | None = None, client: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return bool(self._redis(client).exists(key))

    def incr(
        self,
        key: Any,
        delta: int = 1,
        version: int | None = None,
        client: Any = None,
        ignore_key_check: bool = False,
    ) -> int:
        """Add ``delta``; ValueError for a missing key, unless ``ignore_key_check=True``
        (then a missing key counts from 0). Beyond a signed 64-bit integer, where Redis's
        INCRBY stops, the sum is made here and stored with the key's TTL kept."""
        made = self.make_and_validate_key(key, version=version)
        redis = self._redis(client)
        # Not @omit_exception: an ignored failure is a miss, which incr raises as ValueError.
        try:
            value = incr(redis, made, delta, create=ignore_key_check, fake=self._is_fake())
        except NETWORK_ERRORS as exc:
            value = self._ignored(exc, "INCRBY", made, None)
        if value is None:
            raise ValueError(self._not_found(key))
        return value if value is redis else int(value)

    def decr(self, key: Any, delta: int = 1, version: int | None = None, client: Any = None) -> int:
        return self.incr(key, -delta, version, client)

    def incr_version(
        self, key: Any, delta: int = 1, version: int | None = None, client: Any = None
    ) -> int:
        """Move the value to version ``version + delta``, keeping its TTL (as django-redis)."""
        if version is None:
            version = self.version
        value = self.get(key, self._missing_key, version=version, client=client)
        if value is self._missing_key:
            raise ValueError(self._not_found(key))
        ttl = self.ttl(key, version=version, client=client)
        self.set(key, value, ttl, version=version + delta, client=client)
        self.delete(key, version=version, client=client)
        return version + delta

    def get_many(
        self, keys: Iterable[Any], version: int | None = None, client: Any = None
    ) -> dict[Any, Any]:
        key_map = {self.make_and_validate_key(key, version=version): key for key in keys}
        if not key_map:
            return {}
        return self._get_many(key_map, client)

    # Keys made by the caller: ``keys`` may be an iterator, spent by the time an error is logged.
    @omit_exception("MGET", lambda args: {}, key=lambda args: str(next(iter(args["key_map"]))))
    def _get_many(self, key_map: dict[str, Any], client: Any) -> dict[Any, Any]:
        made = list(key_map)
        redis = self._redis(client)
        if self._is_cluster(redis):
            pipe: Any = redis.pipeline()
            for key in made:
                pipe.execute_command("GET", key, **_NEVER_DECODE)
            values = pipe.execute()
        else:
            values = redis.execute_command("MGET", *made, **_NEVER_DECODE)
        return self._found(key_map, made, values)

    @omit_exception("SET", lambda args: list(args["data"]), key=first_key)
    def set_many(
        self,
        data: dict[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> list[Any]:
        if not data:
            return []
        timeout = self.get_backend_timeout(timeout)
        redis = self._redis(client)
        encoded = {
            self.make_and_validate_key(key, version=version): self._codec.dumps(value)
            for key, value in data.items()
        }
        if timeout == 0:
            redis.delete(*encoded)
            return []
        given_pipeline = _is_pipeline(redis)
        pipe = redis if given_pipeline else redis.pipeline(transaction=False)
        for key, value in encoded.items():
            pipe.set(key, value, ex=timeout)
        if not given_pipeline:  # a caller's pipeline runs when the caller says
            pipe.execute()
        return []

    # Returns how many were deleted (django-redis's contract), where BaseCache says None.
    def delete_many(  # type: ignore[override]
        self, keys: Iterable[Any], version: int | None = None, client: Any = None
    ) -> int | None:
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        if not made:
            return None  # Django's tests ask for None here; django-redis's only for a falsy value
        return self._delete_many(made, client)

    @omit_exception("DEL", 0, key=lambda args: str(args["made"][0]))
    def _delete_many(self, made: list[str], client: Any) -> int:
        return int(self._redis(client).delete(*made))

    def clear(self) -> bool:  # type: ignore[override]  # django-redis returns whether it did
        """Delete this cache's keys (any version), not the whole database.

        Django's RedisCache and django-redis send FLUSHDB, which would also delete what other
        code keeps on the same connection; this scans for the cache's own keys instead, on
        every primary of a cluster. Returns whether anything was deleted.
        """
        return self._delete_matching(self._pattern("*", "*")) > 0

    def close(self, **kwargs: Any) -> None:
        """Nothing to close: the pool belongs to the process (``connections.close_all()``)."""
        self.client.close(**kwargs)

    # -- internals -------------------------------------------------------------------------

    def _redis(self, client: Any = None) -> Any:
        """``client`` when the caller gave one (django-redis's ``client=``), else the
        connection's client; a cache with bad OPTIONS or LOCATION says so here."""
        if client is not None:
            return client
        if self._problems or self._bad_location is not None:
            self._refuse()
        return get_redis(self.connection_name)

    def _aredis(self, client: Any = None) -> Any:
        if client is not None:
            return client
        if self._problems or self._bad_location is not None:
            self._refuse()
        return get_async_redis(self.connection_name)

    def _refuse(self) -> None:
        if self._bad_location is not None:
            raise InvalidCacheBackendError(
                f"redis_conn's RedisCache takes the name of one connection of "
                f"REDIS_CONNECTIONS as LOCATION, not {self._bad_location!r}."
            )
        raise InvalidCacheBackendError(
            f"redis_conn's RedisCache on connection {self.connection_name!r}: "
            + " ".join(self._problems)
        )

    @cached_property
    def _codec(self) -> Codec:
        if self._problems or self._bad_location is not None:
            self._refuse()
        return codec(self._options)

    def _made(self, key: Any, version: int | None, prefix: str | None) -> str:
        if prefix is None:
            return self.make_and_validate_key(key, version=version)
        made = self.client.make_key(key, version, prefix)
        self.validate_key(made)
        return made

    def _store_nothing(self, client: Any, key: str, data: Any, *, nx: bool) -> bool:
        # A timeout of 0 stores nothing; add() still says whether the key was absent.
        if nx:
            added = bool(client.set(key, data, nx=True))
            if added:
                client.delete(key)
            return added
        client.delete(key)
        return False

    def _found(self, key_map: dict[str, Any], made: list[str], values: list[Any]) -> dict[Any, Any]:
        loads = self._codec.loads
        return {
            key_map[key]: loads(value)
            for key, value in zip(made, values, strict=True)
            if value is not None
        }

    def _delete_matching(
        self, pattern: str, itersize: int | None = None, client: Any = None
    ) -> int:
        client = self._redis(client)
        count = itersize or self._itersize
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
                f"The cache on {messages.subject(self.connection_name)} cannot find its keys: "
                "its KEY_FUNCTION does not put the key into the Redis key."
            )
        return pattern

    def _is_fake(self) -> bool:
        return current_registry().spec(self.connection_name).kind == "fake"

    @staticmethod
    def _is_cluster(client: Any) -> bool:
        return hasattr(client, "nodes_manager")

    def _not_found(self, key: Any) -> str:
        return f"Key {key!r} not found in the cache on {messages.subject(self.connection_name)}."

    def _ignored(self, exc: Exception, command: str, key: str, result: T) -> T:
        """Re-raise, or with IGNORE_EXCEPTIONS log and return the miss value ``result``
        (called by :func:`~redis_conn.django.cache_omit.omit_exception`, and by incr).

        With LOG_IGNORED_EXCEPTIONS the one record is django-redis's own (ERROR "Exception
        ignored" with the traceback, on DJANGO_REDIS_LOGGER), so existing log filters and
        alerts keep matching; without it, a WARNING of ours that names the command and key.
        """
        if not self._ignore_exceptions:
            raise exc
        if self._log_ignored_exceptions:
            self.logger.error("Exception ignored", exc_info=exc)
            return result
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
        return f"<RedisCache on {messages.subject(self.connection_name)}>"


def caches_by_connection() -> dict[str, list[str]]:
    """The CACHES aliases on this backend, by the connection name their LOCATION gives."""
    found: dict[str, list[str]] = {}
    for alias, params in caches_on(RedisCache):
        found.setdefault(params.get("LOCATION") or "default", []).append(alias)
    return found


def get_redis_connection(alias: str = "default", write: bool = True) -> Client:
    """The client behind ``caches[alias]`` (django-redis's function of the same name;
    ``django_redis.get_redis_connection`` returns the same client for this backend).

    ``write`` is accepted for django-redis's callers; reads and writes share one client.
    """
    cache = caches[alias]
    if not isinstance(cache, RedisCache):
        raise ValueError(
            f"CACHES[{alias!r}] is {type(cache).__module__}.{type(cache).__qualname__}, not "
            "redis_conn.django.cache.RedisCache, so it has no Redis connection to return."
        )
    return cache.client.get_client(write)


def _is_pipeline(client: Any) -> bool:
    return hasattr(client, "command_stack")  # redis-py's pipelines, sync, async and cluster
