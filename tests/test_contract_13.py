"""CONTRACT section 13: a failure inside the client after the write is section 6's error.

A response callback that raises ``AttributeError`` stands in for what redis-py 8.2 did to the
multiplexer (it read a connection attribute the package did not have): the command ran on the
server, then the client failed. The caller must get ``ReplyNotUnderstood``, an
``OutcomeUnknown`` saying the command may or may not have run, never the bare error; the
command is not sent again (the server's counter is 1), and the connection still works.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from redis_conn import ConnectionRegistry, OutcomeUnknown, ReplyNotUnderstood

try:
    from servers import RedisServer
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import RedisServer


def broken(response: Any, **options: Any) -> Any:
    raise AttributeError("'Connection' object has no attribute '_new_in_the_next_release'")


CAUSE = "(AttributeError: 'Connection' object has no attribute '_new_in_the_next_release')"


def expected(what: str) -> str:
    return (
        f"Redis connection 'default': {what} was sent, then its reply could not be read "
        f"{CAUSE}; it may or may not have run, and it was not sent again."
    )


@pytest.fixture
def registry(redis_server: RedisServer) -> Iterator[ConnectionRegistry]:
    registry = ConnectionRegistry({"default": {"URL": redis_server.url}})
    yield registry
    registry.close_all()


def counter(redis_server: RedisServer) -> Any:
    with redis_server.client() as plain:
        return plain.get("counter")


def test_sync_command(registry: ConnectionRegistry, redis_server: RedisServer) -> None:
    client = registry.get()
    client.set_response_callback("INCRBY", broken)
    with pytest.raises(ReplyNotUnderstood) as info:
        client.incr("counter")
    assert str(info.value) == expected("INCRBY")
    assert isinstance(info.value, OutcomeUnknown)
    assert isinstance(info.value.__cause__, AttributeError)
    assert counter(redis_server) == b"1"  # it ran, once
    assert client.echo("still fine") == b"still fine"


@pytest.mark.parametrize("transaction", [False, True], ids=["pipeline", "transaction"])
def test_sync_redis_py_pipeline(
    transaction: bool, registry: ConnectionRegistry, redis_server: RedisServer
) -> None:
    client = registry.get()
    client.set_response_callback("INCRBY", broken)
    with client.pipeline(transaction=transaction) as pipe:
        pipe.incr("counter")
        pipe.echo("x")
        with pytest.raises(ReplyNotUnderstood) as info:
            pipe.execute()
    what = "a transaction of 2 commands" if transaction else "INCRBY"
    assert str(info.value) == expected(what)
    assert counter(redis_server) == b"1"
    assert client.echo("still fine") == b"still fine"


@pytest.mark.parametrize("multiplex", [False, True], ids=["pooled", "multiplex"])
def test_async_command_and_pipelines(multiplex: bool, redis_server: RedisServer) -> None:
    registry = ConnectionRegistry({"default": {"URL": redis_server.url, "MULTIPLEX": multiplex}})

    async def scenario() -> list[str]:
        client = registry.get_async()
        client.set_response_callback("INCRBY", broken)
        messages = []
        try:
            with pytest.raises(ReplyNotUnderstood) as info:
                await client.incr("counter")
            messages.append(str(info.value))
            for transaction in (False, True):
                async with client.pipeline(transaction=transaction) as pipe:
                    pipe.incr("counter")
                    pipe.echo("x")
                    with pytest.raises(ReplyNotUnderstood) as info:
                        await pipe.execute()
                messages.append(str(info.value))
            assert await client.echo("still fine") == b"still fine"
        finally:
            await registry.aclose_async()
        return messages

    messages = asyncio.run(scenario())
    assert messages == [
        expected("INCRBY"),
        expected("INCRBY"),
        expected("a transaction of 2 commands"),
    ]
    assert counter(redis_server) == b"3"  # each of the three ran once
    registry.close_all()
