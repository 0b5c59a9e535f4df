"""incr/decr on the cache: atomic for a present key, and beyond signed 64-bit integers.

Redis's INCRBY works on signed 64-bit integers; a missing key must raise ValueError (Django's
contract), so the existence check and the INCRBY run in one Lua script, or under WATCH on a
FAKE connection (fakeredis runs Lua only with lupa). When INCRBY refuses a stored value or a
sum outside 64 bits, the sum is made in Python, as django-redis does, under WATCH so that a
concurrent write is not lost, with the key's TTL kept (SET KEEPTTL).
"""

from __future__ import annotations

import re
from typing import Any

from redis.exceptions import ResponseError, WatchError

from redis_conn.internals import NEVER_DECODE

# Raise ValueError for a missing key, as Django's RedisCache does; nil is a missing key.
INCR_EXISTING = (
    "if redis.call('EXISTS', KEYS[1]) == 1 then "
    "return redis.call('INCRBY', KEYS[1], ARGV[1]) end return false"
)
_NEVER_DECODE = {NEVER_DECODE: True}
_INTEGER = re.compile(rb"-?[0-9]+")


def incr(client: Any, key: str, delta: int, *, create: bool, fake: bool) -> Any:
    """The new value; None for a missing key (unless ``create``: counts from 0)."""
    try:
        if create:
            return client.incrby(key, delta)
        if fake:
            return _incr_watched(client, key, delta)
        return client.eval(INCR_EXISTING, 1, key, delta)
    except ResponseError as exc:
        return _incr_beyond_64_bits(client, key, delta, create, exc)


async def aincr(client: Any, key: str, delta: int, *, create: bool, fake: bool) -> Any:
    try:
        if create:
            return await client.incrby(key, delta)
        if fake:
            return await _aincr_watched(client, key, delta)
        return await client.eval(INCR_EXISTING, 1, key, delta)
    except ResponseError as exc:
        return await _aincr_beyond_64_bits(client, key, delta, create, exc)


def _stored_integer(raw: bytes | None, error: ResponseError) -> int | None:
    if raw is None:
        return None
    if not _INTEGER.fullmatch(raw):
        raise error  # not a number: INCRBY's own error, as Django's RedisCache raises it
    return int(raw)


def _incr_beyond_64_bits(
    client: Any, key: str, delta: int, create: bool, error: ResponseError
) -> int | None:
    # INCRBY refused (a stored value or the sum outside a signed 64-bit integer): add in
    # Python, as django-redis does, but under WATCH so that a concurrent write is not lost,
    # and keep the key's TTL. None: no such key (and not create).
    with client.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                current = _stored_integer(pipe.execute_command("GET", key, **_NEVER_DECODE), error)
                if current is None and not create:
                    pipe.unwatch()
                    return None
                value = (current or 0) + delta
                pipe.multi()
                pipe.set(key, value, keepttl=True)
                pipe.execute()
                return value
            except WatchError:
                continue


async def _aincr_beyond_64_bits(
    client: Any, key: str, delta: int, create: bool, error: ResponseError
) -> int | None:
    async with client.pipeline() as pipe:
        while True:
            try:
                await pipe.watch(key)
                raw = await pipe.execute_command("GET", key, **_NEVER_DECODE)
                current = _stored_integer(raw, error)
                if current is None and not create:
                    await pipe.unwatch()
                    return None
                value = (current or 0) + delta
                pipe.multi()
                pipe.set(key, value, keepttl=True)
                await pipe.execute()
                return value
            except WatchError:
                continue


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
