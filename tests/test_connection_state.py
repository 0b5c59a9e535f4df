"""CONTRACT section 10: a connection goes back to its pool as it came out.

Each scenario sends a command that changes the session through ``execute_command`` on a pool
of ONE connection (so the next command surely gets the same place), then checks that the next
borrower sees the configured state: db 0, no transaction, no WATCH, no MONITOR stream, the
configured client name and protocol. Sync pooled, asyncio pooled, and the dedicated
connections of a MULTIPLEX client. Plain commands, pipelines and transactions keep their
connection (no needless reconnect): the server-side client id stays the same.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redis_conn import ConnectionRegistry, PoolExhausted
from redis_conn.internals import is_connected
from redis_conn.session_state import SESSION_COMMANDS, session_after

try:
    from servers import RedisServer
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import RedisServer

# (what is sent, how the next borrower could be fooled) — checked by ``next_borrower_is_clean``.
STATE_CHANGES: dict[str, tuple[Any, ...]] = {
    "select": ("SELECT", 1),
    "multi": ("MULTI",),
    "watch": ("WATCH", "watched"),
    "monitor": ("MONITOR",),
    "client-setname": ("CLIENT", "SETNAME", "someone-else"),
    "hello-2": ("HELLO", 2),
    "hello-3": ("HELLO", 3),
}


@pytest.fixture
def registry(redis_server: RedisServer) -> Iterator[Callable[..., ConnectionRegistry]]:
    made: list[ConnectionRegistry] = []

    def make(**extra: Any) -> ConnectionRegistry:
        registry = ConnectionRegistry(
            {"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 1, **extra}},
        )
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.close_all()


def prepare(redis_server: RedisServer) -> None:
    with redis_server.client() as plain:
        plain.rpush("queue", "in-db-0")
        plain.set("watched", "v0")


def check_after(expected_name: Any, reads: dict[str, Any]) -> None:
    """What the next borrower read, compared with the configured state."""
    assert reads["blpop"] == [b"queue", b"in-db-0"], reads  # db 0, no MULTI, no MONITOR line
    assert reads["transaction"] == [True, b"v1"], reads  # no WATCH left armed
    assert reads["name"] == expected_name, reads  # the configured client name
    assert reads["hgetall"] == {b"f": b"v"}, reads  # the configured protocol's parsing
    assert reads["echo"] == b"mine", reads


def sync_reads(client: Any, redis_server: RedisServer) -> dict[str, Any]:
    reads: dict[str, Any] = {"blpop": client.blpop(["queue"], timeout=1)}
    with redis_server.client() as plain:
        plain.set("watched", "changed-by-another-client")
    with client.pipeline(transaction=True) as pipe:
        pipe.set("watched", "v1")
        pipe.get("watched")
        reads["transaction"] = pipe.execute()
    reads["name"] = client.client_getname()
    client.hset("h", "f", "v")
    reads["hgetall"] = client.hgetall("h")
    reads["echo"] = client.echo("mine")
    return reads


async def async_reads(client: Any, redis_server: RedisServer) -> dict[str, Any]:
    reads: dict[str, Any] = {"blpop": await client.blpop(["queue"], timeout=1)}
    with redis_server.client() as plain:
        plain.set("watched", "changed-by-another-client")
    async with client.pipeline(transaction=True) as pipe:
        pipe.set("watched", "v1")
        pipe.get("watched")
        reads["transaction"] = await pipe.execute()
    reads["name"] = await client.client_getname()
    await client.hset("h", "f", "v")
    reads["hgetall"] = await client.hgetall("h")
    reads["echo"] = await client.echo("mine")
    return reads


def normalise(reads: dict[str, Any]) -> dict[str, Any]:
    blpop = reads["blpop"]
    reads["blpop"] = list(blpop) if blpop is not None else None
    return reads


@pytest.mark.parametrize("change", list(STATE_CHANGES), ids=list(STATE_CHANGES))
def test_sync_pooled_connection_comes_back_as_it_came_out(
    change: str, registry: Callable[..., ConnectionRegistry], redis_server: RedisServer
) -> None:
    prepare(redis_server)
    client = registry().get()
    expected_name = client.client_getname()
    client.execute_command(*STATE_CHANGES[change])
    reads = normalise(sync_reads(client, redis_server))
    check_after(expected_name, reads)


@pytest.mark.parametrize("multiplex", [False, True], ids=["pooled", "multiplex-dedicated"])
@pytest.mark.parametrize("change", list(STATE_CHANGES), ids=list(STATE_CHANGES))
def test_async_connection_comes_back_as_it_came_out(
    change: str,
    multiplex: bool,
    registry: Callable[..., ConnectionRegistry],
    redis_server: RedisServer,
) -> None:
    prepare(redis_server)
    reg = registry(MULTIPLEX=multiplex)

    async def scenario() -> tuple[Any, dict[str, Any]]:
        client = reg.get_async()
        try:
            expected_name = await client.client_getname()
            await client.execute_command(*STATE_CHANGES[change])
            return expected_name, normalise(await async_reads(client, redis_server))
        finally:
            await reg.aclose_async()

    expected_name, reads = asyncio.run(scenario())
    check_after(expected_name, reads)


def test_plain_commands_pipelines_and_transactions_keep_their_connection(
    registry: Callable[..., ConnectionRegistry], redis_server: RedisServer
) -> None:
    client = registry().get()
    before = client.client_id()
    client.set("k", "v")
    client.get("k")
    with client.pipeline(transaction=True) as pipe:
        pipe.watch("k")
        pipe.multi()
        pipe.set("k", "w")
        pipe.execute()
    with client.pipeline(transaction=False) as pipe:
        pipe.get("k")
        pipe.execute()
    assert client.client_id() == before  # nothing above needed a new connection


def test_a_changed_session_closes_the_connection_once(
    registry: Callable[..., ConnectionRegistry], redis_server: RedisServer
) -> None:
    client = registry().get()
    first = client.client_id()
    client.execute_command("SELECT", 1)
    second = client.client_id()
    third = client.client_id()
    assert first != second == third


def test_the_session_state_machine() -> None:
    assert session_after(0, [("GET", "k"), ("SET", "k", "v")]) == 0
    assert session_after(0, [("MULTI",), ("SET", "k", "v"), ("EXEC",)]) == 0
    assert session_after(0, [("WATCH", "k"), ("MULTI",), ("EXEC",)]) == 0
    assert session_after(0, [("WATCH", "k"), ("UNWATCH",)]) == 0
    assert session_after(0, [(b"multi",)]) != 0
    assert session_after(0, [("WATCH", "k")]) != 0
    assert session_after(0, [("client", "setname", "x")]) != 0
    assert session_after(0, [("CLIENT", "GETNAME")]) == 0
    assert session_after(0, [("SELECT", 1), ("EXEC",)]) != 0  # EXEC does not undo SELECT
    for command in SESSION_COMMANDS:
        assert session_after(0, [tuple(command.split())]) != 0, command


def test_a_release_by_a_thread_that_does_not_hold_the_lease_does_nothing(
    registry: Callable[..., ConnectionRegistry],
) -> None:
    # A finalizer (run by the garbage collector in any thread) giving back what its object was
    # interrupted giving back must not take the connection from its next holder.
    pool = registry().get().connection_pool
    held = pool.get_connection()
    held.connect()
    stranger = threading.Thread(target=pool.release, args=(held,))
    stranger.start()
    stranger.join()
    assert pool.usage().in_use == 1
    assert is_connected(held)  # and the stranger did not close it under its holder
    pool.release(held)
    assert pool.usage().in_use == 0
    assert pool.get_connection() is held
    pool.release(held)
    pool.release(held)  # twice, by the same thread: the second does nothing
    assert (pool.usage().idle, pool.usage().in_use) == (1, 0)
    assert pool.get_connection() is held
    with pytest.raises(PoolExhausted):
        pool.get_connection()  # one place, still lent: the double release freed nothing
    pool.release(held)


def test_a_connection_closed_and_released_by_another_thread_frees_its_place(
    registry: Callable[..., ConnectionRegistry],
) -> None:
    # What redis-py's PubSub.run_in_thread() does when it stops (RQ's workers use it): the
    # subscription's connection, taken by one thread, is closed and given back by another.
    client = registry().get()
    pubsub = client.pubsub()
    pubsub.subscribe(news=lambda message: None)
    runner = pubsub.run_in_thread(sleep_time=0.01)
    runner.stop()
    runner.join(10)
    assert not runner.is_alive()
    pool = client.connection_pool
    assert pool.usage().in_use == 0
    assert client.echo("the place is free") == b"the place is free"


def test_a_dropped_pipeline_never_releases_its_connection_twice(
    registry: Callable[..., ConnectionRegistry],
) -> None:
    # redis-py's Pipeline.__del__ resets, which releases the connection it still names; ours
    # forgets it. A pipeline interrupted between giving its connection back and forgetting it
    # must not give it back again from the garbage collector while someone else holds it.
    client = registry().get()
    pool = client.connection_pool
    pipe = client.pipeline()
    pipe.watch("k")  # the pipeline now holds the pool's one connection
    held = pipe.connection
    pool.release(held)  # as an interrupted reset() leaves it: released, still named
    mine = pool.get_connection()
    assert mine is held
    del pipe
    gc.collect()
    assert pool.usage().in_use == 1  # still mine
    with pytest.raises(PoolExhausted):
        pool.get_connection()
    pool.release(mine)
