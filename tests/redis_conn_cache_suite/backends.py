"""A test-only backend whose sync methods run redis_conn's native async methods.

Django's cache suite is synchronous; through this backend the same tests exercise ``aget``,
``aset``, ``aget_many`` ... on ``get_async_redis``. Each call runs through asgiref's
``async_to_sync``, as Django runs async code under a sync caller: on an event loop of its own,
with ``sync_to_async`` work sent back to the calling thread. The loop's asyncio client is
closed before the loop ends.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import async_to_sync

from redis_conn.django.cache import RedisCache
from redis_conn.registry import connections


async def _closing(coroutine: Coroutine[Any, Any, Any]) -> Any:
    try:
        return await coroutine
    finally:
        await connections.aclose_async()


def _through(async_name: str) -> Callable[..., Any]:
    def method(self: RedisCache, *args: Any, **kwargs: Any) -> Any:
        return async_to_sync(_closing)(getattr(self, async_name)(*args, **kwargs))

    method.__name__ = async_name[1:]
    method.answered_by = async_name  # type: ignore[attr-defined]
    return method


class AsyncPathRedisCache(RedisCache):
    """get() is aget(), set() is aset(), ...; get_or_set() stays BaseCache's (over them)."""


ASYNC_TWINS = [
    "aget",
    "aset",
    "aadd",
    "atouch",
    "adelete",
    "ahas_key",
    "aincr",
    "adecr",
    "aget_many",
    "aset_many",
    "adelete_many",
    "aincr_version",
    "adecr_version",
    "aclear",
    "aclose",
]
for _name in ASYNC_TWINS:
    setattr(AsyncPathRedisCache, _name[1:], _through(_name))
