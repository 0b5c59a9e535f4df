"""The cache's async methods, natively async on ``get_async_redis(LOCATION)``.

``await cache.aget(...)`` sends GET on the running event loop (on a MULTIPLEX connection,
over the loop's one shared connection), instead of Django's default of running the sync
method in a worker thread. Mixed into ``RedisCache``, whose helpers (keys, codec, error
policy) they share with the sync methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.exceptions import SynchronousOnlyOperation

from redis_conn.codecs import Codec
from redis_conn.django.cache_extras import NETWORK_ERRORS, remaining
from redis_conn.django.cache_incr import aincr
from redis_conn.django.cache_omit import CALL_DEFAULT, first_key, omit_exception
from redis_conn.internals import NEVER_DECODE

_NEVER_DECODE = {NEVER_DECODE: True}  # values are bytes even where OPTIONS decode_responses


T = TypeVar("T")


class AsyncMethodsMixin:
    """aget, aset, aadd, atouch, adelete, ahas_key, aincr, aget_many, aset_many,
    adelete_many, aincr_version (keeping the TTL, as the sync one), aclear, aclose.

    BaseCache's own aget_or_set, adecr and adecr_version are built on these, so they are
    inherited: they too run on the asyncio client."""

    # Provided by RedisCache.
    _itersize: int
    _missing_key: Any
    version: int
    make_key: Callable[..., str]
    make_and_validate_key: Callable[..., str]
    get_backend_timeout: Callable[..., int | None]
    _aredis: Callable[[Any], Any]

    if TYPE_CHECKING:

        @property
        def _codec(self) -> Codec: ...

        def _ignored(self, exc: Exception, command: str, key: str, result: T) -> T: ...

    _is_fake: Callable[[], bool]
    _is_cluster: Callable[[Any], bool]
    _found: Callable[..., dict[Any, Any]]
    _not_found: Callable[[Any], str]
    _pattern: Callable[..., str]

    @omit_exception("GET", CALL_DEFAULT)
    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        value = await self._aredis(None).execute_command("GET", key, **_NEVER_DECODE)
        return default if value is None else self._codec.loads(value)

    @omit_exception("SET", False)
    async def aset(
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
        client = self._aredis(None)
        if timeout == 0:
            return await self._astore_nothing(client, key, data, nx=nx)
        return bool(await client.set(key, data, ex=timeout, nx=nx, xx=xx))

    async def aadd(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return await self.aset(key, value, timeout, version, nx=True)

    @omit_exception("EXPIRE", False)
    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        client = self._aredis(None)
        if timeout is not None:
            return bool(await client.expire(key, timeout))
        # PERSIST says 0 for a key that had no expiry as well as for a missing one.
        return bool(await client.persist(key)) or bool(await client.exists(key))

    @omit_exception("DEL", False)
    async def adelete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return bool(await self._aredis(None).delete(key))

    @omit_exception("EXISTS", False)
    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return bool(await self._aredis(None).exists(key))

    async def aincr(
        self, key: Any, delta: int = 1, version: int | None = None, ignore_key_check: bool = False
    ) -> int:
        made = self.make_and_validate_key(key, version=version)
        client = self._aredis(None)
        # Not @omit_exception: an ignored failure is a miss, which incr raises as ValueError.
        try:
            value = await aincr(client, made, delta, create=ignore_key_check, fake=self._is_fake())
        except NETWORK_ERRORS as exc:
            value = self._ignored(exc, "INCRBY", made, None)
        if value is None:
            raise ValueError(self._not_found(key))
        return int(value)

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        key_map = {self.make_and_validate_key(key, version=version): key for key in keys}
        if not key_map:
            return {}
        return await self._aget_many(key_map)

    # Keys made by the caller: ``keys`` may be an iterator, spent by the time an error is logged.
    @omit_exception("MGET", lambda args: {}, key=lambda args: str(next(iter(args["key_map"]))))
    async def _aget_many(self, key_map: dict[str, Any]) -> dict[Any, Any]:
        made = list(key_map)
        client = self._aredis(None)
        if self._is_cluster(client):
            pipe: Any = client.pipeline()
            for key in made:
                pipe.execute_command("GET", key, **_NEVER_DECODE)
            values = await pipe.execute()
        else:
            values = await client.execute_command("MGET", *made, **_NEVER_DECODE)
        return self._found(key_map, made, values)

    @omit_exception("SET", lambda args: list(args["data"]), key=first_key)
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
        client = self._aredis(None)
        if timeout == 0:
            await client.delete(*encoded)
            return []
        pipe = client.pipeline(transaction=False)
        for key, value in encoded.items():
            pipe.set(key, value, ex=timeout)
        await pipe.execute()
        return []

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> int | None:
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        if not made:
            return None  # as delete_many()
        return await self._adelete_many(made)

    @omit_exception("DEL", 0, key=lambda args: str(args["made"][0]))
    async def _adelete_many(self, made: list[str]) -> int:
        return int(await self._aredis(None).delete(*made))

    async def aincr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        if version is None:
            version = self.version
        value = await self.aget(key, self._missing_key, version=version)
        if value is self._missing_key:
            raise ValueError(self._not_found(key))
        ttl = remaining(await self._aredis(None).ttl(self.make_key(key, version=version)))
        await self.aset(key, value, ttl, version=version + delta)
        await self.adelete(key, version=version)
        return version + delta

    async def aclear(self) -> bool:
        """See :meth:`clear`."""
        client = self._aredis(None)
        deleted, batch = 0, []
        count = self._itersize
        async for key in client.scan_iter(match=self._pattern("*", "*"), count=count):
            batch.append(key)
            if len(batch) >= count:
                deleted += await client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await client.unlink(*batch)
        return deleted > 0

    async def aclose(self, **kwargs: Any) -> None:
        """Nothing to close: the asyncio clients belong to their event loop."""

    async def _adumps(self, value: Any) -> bytes | int:
        try:
            return self._codec.dumps(value)
        except SynchronousOnlyOperation:
            # Pickling touched the database (an unevaluated QuerySet), which Django allows
            # only off the event loop: serialize in a thread, as Django's default aset() does.
            return await sync_to_async(self._codec.dumps)(value)

    async def _astore_nothing(self, client: Any, key: str, data: Any, *, nx: bool) -> bool:
        if nx:
            added = bool(await client.set(key, data, nx=True))
            if added:
                await client.delete(key)
            return added
        await client.delete(key)
        return False
