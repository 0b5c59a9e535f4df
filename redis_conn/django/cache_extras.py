"""django-redis's extras on the cache's keys: expiry, key search, delete by pattern, locks.

Signatures are django-redis 7's (``client=`` included, in its place), so code written for
django-redis runs unchanged. Mixed into ``RedisCache``; the data structures (hashes, sets,
sorted sets) are in :mod:`redis_conn.django.cache_structures`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from redis_conn.django.cache_keys import KeyReverser
from redis_conn.django.cache_omit import NETWORK_ERRORS, omit_exception

__all__ = ["NETWORK_ERRORS", "KeyMethodsMixin", "remaining"]

#: What ``ttl``/``pttl`` say for a key that does not exist (django-redis's answer).
_MISSING = 0


def remaining(value: int) -> int | None:
    if value == -1:  # no expiry
        return None
    return max(value, _MISSING)  # -2: no such key


class KeyMethodsMixin:
    """ttl, pttl, expire, pexpire, expire_at, pexpire_at, persist, keys, iter_keys,
    delete_pattern and lock (mixed into ``RedisCache``)."""

    # Provided by RedisCache.
    default_timeout: Any
    make_and_validate_key: Callable[..., str]
    _redis: Callable[[Any], Any]

    _pattern: Callable[..., str]
    key_func: Callable[..., str]
    key_prefix: str
    _reverse_key_func: Callable[[str], str] | None
    _delete_matching: Callable[..., int]
    _itersize: int
    get_backend_timeout: Callable[..., int | None]

    @cached_property
    def _reverse_key(self) -> Callable[[Any], str]:
        """The key a caller used, from a Redis key: django-redis's REVERSE_KEY_FUNCTION when
        the cache has one, else worked out from KEY_FUNCTION."""
        reverse = self._reverse_key_func
        if reverse is None:
            return KeyReverser(self.key_func, self.key_prefix)
        return lambda key: str(reverse(key.decode() if isinstance(key, bytes) else key))

    @omit_exception("TTL", _MISSING)
    def ttl(self, key: Any, version: int | None = None, client: Any = None) -> int | None:
        """Seconds to live; None when the key never expires, 0 when it does not exist."""
        key = self.make_and_validate_key(key, version=version)
        return remaining(self._redis(client).ttl(key))

    @omit_exception("PTTL", _MISSING)
    def pttl(self, key: Any, version: int | None = None, client: Any = None) -> int | None:
        """Milliseconds to live; None when the key never expires, 0 when it does not exist."""
        key = self.make_and_validate_key(key, version=version)
        return remaining(self._redis(client).pttl(key))

    @omit_exception("EXPIRE", False)
    def expire(
        self, key: Any, timeout: Any, version: int | None = None, client: Any = None
    ) -> bool:
        """A new timeout in seconds (DEFAULT_TIMEOUT: the cache's; None: never expires;
        0 or less: gone now). False when there is no such key."""
        made = self.make_and_validate_key(key, version=version)
        seconds = self.get_backend_timeout(timeout)
        redis = self._redis(client)
        if seconds is None:
            # PERSIST says 0 for a key that had no expiry as well as for a missing one.
            return bool(redis.persist(made)) or bool(redis.exists(made))
        return bool(redis.expire(made, seconds))

    @omit_exception("PEXPIRE", False)
    def pexpire(
        self, key: Any, timeout: Any, version: int | None = None, client: Any = None
    ) -> bool:
        """A new timeout in milliseconds (DEFAULT_TIMEOUT: the cache's own, in ms)."""
        if timeout is DEFAULT_TIMEOUT:
            seconds = self.get_backend_timeout(timeout)
            if seconds is None:
                return self.expire(key, None, version, client)
            timeout = seconds * 1000
        made = self.make_and_validate_key(key, version=version)
        return bool(self._redis(client).pexpire(made, max(0, int(timeout))))

    @omit_exception("EXPIREAT", False)
    def expire_at(
        self, key: Any, when: Any, version: int | None = None, client: Any = None
    ) -> bool:
        """Expire at ``when``: a datetime or a Unix time in seconds."""
        made = self.make_and_validate_key(key, version=version)
        return bool(self._redis(client).expireat(made, when))

    @omit_exception("PEXPIREAT", False)
    def pexpire_at(
        self, key: Any, when: Any, version: int | None = None, client: Any = None
    ) -> bool:
        """Expire at ``when``: a datetime or a Unix time in milliseconds."""
        made = self.make_and_validate_key(key, version=version)
        return bool(self._redis(client).pexpireat(made, when))

    @omit_exception("PERSIST", False)
    def persist(self, key: Any, version: int | None = None, client: Any = None) -> bool:
        """Make the key never expire; True when it had a timeout."""
        made = self.make_and_validate_key(key, version=version)
        return bool(self._redis(client).persist(made))

    def iter_keys(
        self,
        search: str,
        itersize: int | None = None,
        client: Any = None,
        version: int | None = None,
    ) -> Iterator[str]:
        """This cache's keys matching the glob ``search``, by SCAN (every cluster primary)."""
        pattern = self._pattern(search, version)
        redis = self._redis(client)
        for key in redis.scan_iter(match=pattern, count=itersize or self._itersize):
            yield self._reverse_key(key)

    def keys(self, search: str, version: int | None = None, client: Any = None) -> list[str]:
        """Like :meth:`iter_keys`, as a list (by SCAN, never the blocking KEYS)."""
        return list(self.iter_keys(search, client=client, version=version))

    def delete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        client: Any = None,
        itersize: int | None = None,
    ) -> int:
        """Delete this cache's keys matching the glob ``pattern``; returns how many."""
        glob = self._pattern(pattern, version, prefix)
        return self._delete_matching(glob, itersize, client)

    def lock(
        self,
        key: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        client: Any = None,
        thread_local: bool = True,
    ) -> Any:
        """redis-py's ``Lock`` on the cache key of ``key`` (``with cache.lock("k"):``)."""
        return self._redis(client).lock(
            self.make_and_validate_key(key, version=version),
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            thread_local=thread_local,
        )
