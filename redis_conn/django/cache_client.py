"""``cache.client``: the shape of django-redis's client object, over the named connection.

django-redis code reaches the raw Redis client with ``cache.client.get_client(write=True)``
or ``django_redis.get_redis_connection(alias)`` (which calls the former), and makes keys with
``cache.client.make_key``. This small object answers those public methods; the client it
returns is ``redis_conn.get_redis(LOCATION)``, the one client and pool of the connection.
It does not copy django-redis's private attributes (``_serializer``, ``_clients`` ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from redis_conn.clients import Client
from redis_conn.codecs import Codec
from redis_conn.registry import get_redis


class CacheParts(Protocol):
    """What this object reads of its cache (a :class:`~redis_conn.django.cache.RedisCache`),
    named here so that this module needs nothing of the backend's."""

    connection_name: str
    key_prefix: str
    version: int
    key_func: Callable[..., str]

    @property
    def _codec(self) -> Codec: ...

    def _pattern(self, search: str, version: Any = None, prefix: str | None = None) -> str: ...


class CacheClient:
    """django-redis's ``DefaultClient`` public surface for one redis_conn cache."""

    def __init__(self, cache: CacheParts) -> None:
        self._cache = cache

    def get_client(self, write: bool = True, tried: list[int] | None = None) -> Client:
        """The connection's client (reads and writes share it: one connection per cache)."""
        return get_redis(self._cache.connection_name)

    def get_client_with_index(
        self, write: bool = True, tried: list[int] | None = None
    ) -> tuple[Client, int]:
        return self.get_client(write), 0

    def make_key(self, key: Any, version: int | None = None, prefix: str | None = None) -> str:
        """The Redis key of ``key``: ``prefix:version:key`` with the default KEY_FUNCTION."""
        cache = self._cache
        return str(
            cache.key_func(
                key,
                cache.key_prefix if prefix is None else prefix,
                cache.version if version is None else version,
            )
        )

    def make_pattern(
        self, pattern: str, version: int | None = None, prefix: str | None = None
    ) -> str:
        """The SCAN glob for ``pattern``, with glob characters of the prefix escaped."""
        return self._cache._pattern(pattern, version, prefix)

    def encode(self, value: Any) -> bytes | int:
        return self._cache._codec.dumps(value)

    def decode(self, value: bytes | int | str) -> Any:
        if isinstance(value, int):
            return value
        return self._cache._codec.loads(value)

    def close(self, **kwargs: Any) -> None:
        """Nothing to close: the pool belongs to the process (``connections.close_all()``)."""

    def __repr__(self) -> str:
        return f"<CacheClient of {self._cache!r}>"
