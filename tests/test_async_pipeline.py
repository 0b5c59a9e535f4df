"""redis_conn.async_pipeline against real servers: the asyncio twin of test_pipeline."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ExecAbortError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn import ConnectionNotFound, PipelineError, ResultNotReady
from redis_conn.async_pipeline import AsyncPipeline, async_pipeline
from redis_conn.pipeline import Future, Pipeline, pipeline
from redis_conn.registry import connections

try:
    from servers import RedisServer
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import RedisServer

T = TypeVar("T")
Configure = Callable[[dict[str, Any]], None]


def run(test: Callable[[], Awaitable[T]]) -> T:
    """Run ``test`` on a fresh event loop, closing that loop's clients before the loop ends."""

    async def main() -> T:
        try:
            return await test()
        finally:
            await connections.aclose_async()

    return asyncio.run(main())


@pytest.fixture
def configure() -> Iterator[Configure]:
    yield connections.configure
    connections.configure(None)


@pytest.fixture
def two_backends(configure: Configure, redis_server: Any, redis_server_b: Any) -> None:
    configure(
        {
            "default": {"URL": redis_server.url},
            "messages": {"ALIAS": "default"},
            "users": {"URL": redis_server_b.url},
        }
    )


def test_contract_example_in_asyncio(
    two_backends: None, redis_server: Any, redis_server_b: Any
) -> None:
    async def set_name(uid: int, name: str, pipe: AsyncPipeline | None = None) -> Future[int]:
        async with async_pipeline(pipe, name="users", autocommit=True) as p:
            return p.hset(f"u{{{uid}}}", "name", name)

    async def test() -> None:
        f = await set_name(1, "joe")
        assert f.result == 1
        async with async_pipeline(name="messages") as root:
            f1 = await set_name(2, "ann", root)
            f2 = root.lpush("inbox", "hi")
            with pytest.raises(ResultNotReady):
                f1.result  # noqa: B018
            await root.execute()
        assert (f1.result, f2.result) == (1, 1)

    run(test)
    with redis_server_b.client() as raw:
        assert raw.hget("u{2}", "name") == b"ann"


def test_replies_are_parsed_as_on_the_plain_async_client(
    configure: Configure, redis_server: Any
) -> None:
    configure({"default": {"URL": redis_server.url, "OPTIONS": {"decode_responses": True}}})

    async def test() -> None:
        client = connections.get_async("default")
        for transaction in (False, True):
            await client.flushall()
            expected = [
                await client.hset("h", mapping={"a": 1}),
                await client.hgetall("h"),
                await client.zadd("z", {"m": 1.5}),
                await client.zrange("z", 0, -1, withscores=True),
                await client.get("missing"),
                await client.mget([]),
            ]
            await client.flushall()
            async with async_pipeline(transaction=transaction) as p:
                futures = [
                    p.hset("h", mapping={"a": 1}),
                    p.hgetall("h"),
                    p.zadd("z", {"m": 1.5}),
                    p.zrange("z", 0, -1, withscores=True),
                    p.get("missing"),
                    p.mget([]),
                ]
                await p.execute()
            assert [f.result for f in futures] == expected

    run(test)


def test_unconfigured_name_and_bad_pipe_fail_at_once(two_backends: None) -> None:
    with pytest.raises(ConnectionNotFound):
        async_pipeline(name="nope")
    with pytest.raises(TypeError, match=r"^async_pipeline\(pipe=\.\.\.\) takes a redis_conn"):
        async_pipeline(object())  # type: ignore[arg-type]


def blocked_in_command(server: RedisServer, client_name: str) -> bool:
    """Whether a connection named ``client_name`` waits in a blocking command on ``server``."""
    with server.client() as raw:
        return any(c["name"] == client_name and "b" in c["flags"] for c in raw.client_list())


def test_backends_run_concurrently_one_backend_needs_no_task(
    configure: Configure, redis_server: RedisServer, redis_server_b: RedisServer
) -> None:
    name = f"async-concurrency-{os.getpid()}"
    servers = {"default": redis_server, "users": redis_server_b}
    configure(
        {
            backend: {"URL": server.url, "SOCKET_TIMEOUT": 120, "OPTIONS": {"client_name": name}}
            for backend, server in servers.items()
        }
    )

    async def test() -> None:
        def task_name(response: Any, **options: Any) -> str:
            task = asyncio.current_task()
            return task.get_name() if task else "no task"

        connections.get_async("default").set_response_callback("ECHO", task_name)
        async with async_pipeline() as p:
            alone = p.echo("x")
            await p.execute()
        assert alone.result == task_name(None)

        # Two BLPOPs with no timeout: neither returns before the test pushes to its list, so
        # both waiting on their servers at the same moment proves the batches run
        # concurrently, however slow the machine.
        async with async_pipeline() as p:
            waits = [p.blpop(["q"], timeout=0), p["users"].blpop(["q"], timeout=0)]
            execution = asyncio.create_task(p.execute())
            try:
                deadline = time.monotonic() + 30
                while not all(blocked_in_command(s, name) for s in servers.values()):
                    assert not execution.done(), execution
                    assert time.monotonic() < deadline, "the two BLPOPs never waited at once"
                    await asyncio.sleep(0.005)  # (the check above blocks the loop briefly)
            finally:
                for backend, server in servers.items():  # also when failing: unblock them
                    with server.client() as raw:
                        raw.rpush("q", f"for-{backend}")
                await execution
        assert [list(f.result) for f in waits] == [[b"q", b"for-default"], [b"q", b"for-users"]]

    run(test)


def test_a_failing_backend_never_stops_the_others(
    configure: Configure, redis_server: Any, killable_server: Any
) -> None:
    configure(
        {
            "default": {"URL": redis_server.url},
            "dead": {"URL": killable_server.url, "RETRY": 0, "SOCKET_CONNECT_TIMEOUT": 0.5},
        }
    )
    killable_server.kill()

    async def test() -> None:
        connections.get_async("default")  # created before the batch
        async with async_pipeline(name="dead") as p:
            lost = p.set("k", "secret")
            fine = p["default"].set("k", "v")
            with pytest.raises(PipelineError) as info:
                await p.execute()
        assert fine.result is True
        with pytest.raises(RedisConnectionError):
            lost.result  # noqa: B018
        assert list(info.value.errors) == ["dead"]
        assert info.value.failed_commands == ["'dead': SET k"]
        assert "secret" not in str(info.value)

    run(test)


def test_command_errors_and_transactions(two_backends: None, redis_server: Any) -> None:
    async def test() -> None:
        await connections.get_async("default").set("str", "x")
        async with async_pipeline() as p:
            ok, wrong, other = p.incr("n"), p.lpush("str", 1), p["users"].incr("n")
            with pytest.raises(PipelineError) as info:
                await p.execute()
        assert (ok.result, other.result) == (1, 1)
        with pytest.raises(ResponseError, match=r"^'default': LPUSH str: WRONGTYPE"):
            wrong.result  # noqa: B018
        assert info.value.failed_commands == ["'default': LPUSH str"]

        async with async_pipeline(transaction=True) as p:
            applied, bad = p.set("a", 1), p.execute_command("SET", "b")
            elsewhere = p["users"].set("a", 1)
            with pytest.raises(PipelineError):
                await p.execute()
        assert elsewhere.result is True
        with pytest.raises(ExecAbortError):
            applied.result  # noqa: B018
        with pytest.raises(ResponseError, match="wrong number of arguments"):
            bad.result  # noqa: B018

    run(test)
    with redis_server.client() as raw:
        assert raw.get("a") is None


def test_exception_in_the_block_sends_nothing(two_backends: None, redis_server: Any) -> None:
    async def test() -> None:
        with pytest.raises(ZeroDivisionError):
            async with async_pipeline(autocommit=True) as p:
                f = p.set("k", "v")
                1 / 0  # noqa: B018
        assert f.done()
        async with async_pipeline() as p:
            p.set("never", 1)  # no execute, no autocommit

    run(test)
    with redis_server.client() as raw:
        assert raw.get("k") is None and raw.get("never") is None


def test_cluster_batches_through_the_async_cluster_pipeline(
    configure: Configure, redis_cluster: Any
) -> None:
    configure({"cache": {"URL": redis_cluster.url, "CLUSTER": True}})

    async def test() -> None:
        keys = [f"key{i}" for i in range(20)]
        async with async_pipeline(name="cache") as p:
            sets = [p.set(k, k) for k in keys]
            gets = [p.get(k) for k in keys]
            await p.execute()
        assert all(f.result is True for f in sets)
        assert [f.result for f in gets] == [k.encode() for k in keys]
        async with async_pipeline(name="cache", transaction=True) as p:
            a, b = p.incr("{t}a"), p.incr("{t}a")
            await p.execute()
        assert (a.result, b.result) == (1, 2)

    run(test)


@pytest.mark.parametrize("kind", ["standalone", "unix", "sentinel", "fake"])
@pytest.mark.parametrize("transaction", [False, True], ids=["plain", "multi"])
def test_every_standalone_kind(
    configure: Configure, redis_server: Any, redis_sentinel: Any, kind: str, transaction: bool
) -> None:
    settings = {
        "standalone": {"URL": redis_server.url},
        "unix": {"URL": redis_server.unix_url},
        "sentinel": {
            "SENTINELS": redis_sentinel.sentinels,
            "SERVICE_NAME": redis_sentinel.service_name,
        },
        "fake": {"FAKE": True},
    }
    configure({"default": {"FAKE": True}, kind: settings[kind]})

    async def test() -> None:
        async with async_pipeline(name=kind, transaction=transaction) as p:
            results = [p.set("a", 1), p.incr("a"), p.hset("h", "x", 1), p.hgetall("h")]
            await p.execute()
        assert [f.result for f in results] == [True, 2, 1, {b"x": b"1"}]

    run(test)


def test_sync_and_async_pipelines_nest_in_each_other(two_backends: None, redis_server: Any) -> None:
    def sync_library(pipe: Any) -> Future[Any]:
        with pipeline(pipe, name="users", autocommit=True) as p:
            return p.incr("sync")

    async def async_library(pipe: Any) -> Future[Any]:
        async with async_pipeline(pipe, name="users", autocommit=True) as p:
            return p.incr("async")

    async def test() -> None:
        async with async_pipeline() as root:
            f = sync_library(root)
            await root.execute()
        assert f.result == 1

        sync_root = pipeline()  # a request pipeline, say, executed in a thread
        g = await async_library(sync_root)
        with pytest.raises(TypeError, match="root is synchronous"):
            await AsyncPipeline.execute(sync_root)  # type: ignore[arg-type]
        await asyncio.to_thread(sync_root.execute)
        assert g.result == 1

    run(test)
    assert isinstance(pipeline(), Pipeline)


def test_cancelled_batch_closes_its_connection(
    configure: Configure, redis_server: Any, redis_server_b: Any
) -> None:
    configure(
        {
            "default": {"URL": redis_server.url, "MULTIPLEX": False},  # a pooled connection
            "users": {"URL": redis_server_b.url},
        }
    )

    async def test() -> None:
        async with async_pipeline() as p:
            first_id = p.client_id()
            await p.execute()
        async with async_pipeline() as p:
            a, slow, c = p.incr("a"), p.blpop(["nothing"], timeout=1), p.incr("c")
            elsewhere = p["users"].set("b", 1)
            task = asyncio.ensure_future(p.execute())
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert a.result == 1 and elsewhere.result is True
        for f in (slow, c):
            with pytest.raises(RedisConnectionError, match="interrupted by CancelledError"):
                f.result  # noqa: B018
        await asyncio.sleep(1.0)  # the stale replies have reached the old socket by now
        async with async_pipeline() as p:
            echo, counters, second_id = p.echo("fresh"), p.mget(["a", "c"]), p.client_id()
            await p.execute()
        assert echo.result == b"fresh"
        assert counters.result == [b"1", None]  # nothing sent twice
        assert second_id.result != first_id.result

    run(test)


def test_socket_timeout_mid_batch(configure: Configure, redis_server: Any) -> None:
    configure({"default": {"URL": redis_server.url, "SOCKET_TIMEOUT": 0.3, "RETRY": 0}})

    async def test() -> None:
        async with async_pipeline() as p:
            a, slow, c = p.incr("a"), p.blpop(["nothing"], timeout=1), p.incr("c")
            with pytest.raises(PipelineError) as info:
                await p.execute()
        assert a.result == 1
        with pytest.raises(RedisTimeoutError):
            slow.result  # noqa: B018
        with pytest.raises(RedisConnectionError, match="interrupted by TimeoutError"):
            c.result  # noqa: B018
        assert isinstance(info.value.errors["default"], RedisTimeoutError)
        await asyncio.sleep(1.0)  # had the socket been pooled, BLPOP's nil would wait on it
        async with async_pipeline() as p:
            echo, counters = p.echo("fresh"), p.mget(["a", "c"])
            await p.execute()
        # Sent once; the INCR queued behind BLPOP died with the connection.
        assert (echo.result, counters.result) == (b"fresh", [b"1", None])

    run(test)
