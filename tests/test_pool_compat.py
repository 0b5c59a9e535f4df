"""Our pools where redis-py's own tests found them behaving unlike redis-py's, for a user.

``bash scripts/redis-py-suite`` runs redis-py's tests with our pools swapped in; the failures
that are differences by design are listed in docs/production.md. The ones that were bugs a
user could hit are pinned here, against a real server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.auth.token import SimpleToken

from redis_conn import ConnectionRegistry, PoolExhausted

try:
    from servers import RedisServer
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import RedisServer


@pytest.fixture
def registry(redis_server_b: RedisServer) -> Iterator[Callable[..., ConnectionRegistry]]:
    made: list[ConnectionRegistry] = []

    def make(**extra: Any) -> ConnectionRegistry:
        assert redis_server_b.acl_url is not None
        registry = ConnectionRegistry({"default": {"URL": redis_server_b.acl_url, **extra}})
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.close_all()


def refreshed_token(redis_server_b: RedisServer) -> SimpleToken:
    """What a streaming credential provider (redis-entraid, say) hands the pool on a refresh:
    the user is the ``oid`` claim, the password the token's value."""
    now_ms = time.time() * 1000
    assert redis_server_b.acl_user is not None and redis_server_b.acl_password is not None
    return SimpleToken(
        redis_server_b.acl_password, now_ms + 3_600_000, now_ms, {"oid": redis_server_b.acl_user}
    )


@pytest.mark.parametrize("blocking", [True, False], ids=["blocking", "non-blocking"])
def test_async_checkout_waits_while_redis_py_re_authenticates_idle_connections(
    blocking: bool, registry: Callable[..., ConnectionRegistry], redis_server_b: RedisServer
) -> None:
    # redis-py's re_auth_callback holds the pool's lock while it sends AUTH on each idle
    # connection and waits for the reply. A checkout that took that connection meanwhile
    # sent its GET on a socket still owing the AUTH's reply: two readers on one socket, and
    # both the re-authentication and the GET failed. The server answers slowly here (paused),
    # as a loaded one would, so that the AUTH's reply is still owed when the GET comes.
    reg = registry(MAX_CONNECTIONS=1, BLOCKING=blocking)
    token = refreshed_token(redis_server_b)

    async def scenario() -> list[Any]:
        client = reg.get_async()
        try:
            await client.set("compat:k", "v")  # the pool's one connection is idle now
            with redis_server_b.client() as admin:
                admin.execute_command("CLIENT", "PAUSE", 300, "ALL")
            reauth = asyncio.ensure_future(client.connection_pool.re_auth_callback(token))
            await asyncio.sleep(0)  # it holds the lock and waits for its AUTH reply
            results = await asyncio.gather(reauth, client.get("compat:k"), return_exceptions=True)
            results.append(await client.acl_whoami())
            return results
        finally:
            await reg.aclose_async()

    assert asyncio.run(scenario()) == [None, b"v", redis_server_b.acl_user]


def test_async_checkout_waits_for_the_pool_lock_no_longer_than_pool_timeout(
    registry: Callable[..., ConnectionRegistry],
) -> None:
    # A lock held for too long (a re-authentication against a hung server) fails the
    # checkout as an exhausted pool does, after POOL_TIMEOUT, naming the connection.
    reg = registry(MAX_CONNECTIONS=1, POOL_TIMEOUT=0.05, MULTIPLEX=False)  # the pool's own checkout

    async def scenario() -> str:
        client = reg.get_async()
        pool = client.connection_pool
        try:
            await client.ping()
            async with pool._lock:  # what redis-py's re-authentication holds
                with pytest.raises(PoolExhausted) as caught:
                    await client.ping()
            assert await client.ping() is True  # and the pool still lends afterwards
            return str(caught.value)
        finally:
            await reg.aclose_async()

    assert asyncio.run(scenario()) == (
        "Redis connection 'default': pool exhausted, no connection was released within "
        "POOL_TIMEOUT=0.05s; MAX_CONNECTIONS=1."
    )
