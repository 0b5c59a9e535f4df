"""MULTIPLEX connections (CONTRACT section 8), against real servers.

One shared connection per backend per event loop carries every task's non-blocking commands;
blocking commands, pub/sub and WATCH transactions get pooled connections; cancellations,
timeouts, lost connections and failovers follow section 6 (nothing written is sent twice).
Server-side facts (connections, counters) are read with a plain redis-py client.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser
from redis.exceptions import AuthenticationError, WatchError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn import (
    ConfigurationError,
    ConnectionLostAfterWrite,
    ConnectionRegistry,
    OutcomeUnknown,
    PoolExhausted,
    TimeoutAfterWrite,
)
from redis_conn.async_clients import aclose_client
from redis_conn.async_pipeline import async_pipeline
from redis_conn.async_pools import AsyncGuardedConnectionPool
from redis_conn.clients import connection_kwargs, pool_kwargs
from redis_conn.config import parse
from redis_conn.guarded import async_connection_class
from redis_conn.health_text import render
from redis_conn.multiplex import Multiplexer
from redis_conn.multiplex_client import MultiplexedRedis, multiplexed_client, needs_dedicated
from redis_conn.named_clients import NamedRedis
from redis_conn.registry import connections
from redis_conn.request_scope import PipelineProxy, RequestPipeline
from redis_conn.retry import AsyncRetry

try:
    from servers import RedisServer, SentinelDeployment
    from servers import eventually as polled_until
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import RedisServer, SentinelDeployment
    from tests.servers import eventually as polled_until

DEADLINE = 10.0  # seconds any awaited condition may take
_names = itertools.count()
NAME = "mux-test"  # CLIENT SETNAME of the connections the current test opens (set per test)


@pytest.fixture(autouse=True)
def client_name() -> Iterator[str]:
    """A server-side name of this test's own, so that no earlier test's closing socket counts."""
    global NAME
    NAME = f"mux-test-{next(_names)}"
    yield NAME


@pytest.fixture
def registry() -> Iterator[ConnectionRegistry]:
    """The process-wide registry (the pipelines resolve names in it), restored after."""
    saved = connections.source
    yield connections
    connections.close_all()
    saved.apply_to(connections)


def settings(url: str, **extra: Any) -> dict[str, Any]:
    options = {"client_name": NAME, **extra.pop("OPTIONS", {})}
    return {"URL": url, "MULTIPLEX": True, "OPTIONS": options, **extra}


def run(registry: ConnectionRegistry, body: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``body`` on a new event loop and close that loop's clients after it."""

    async def main() -> Any:
        try:
            return await body()
        finally:
            await registry.aclose_async()

    return asyncio.run(main())


def named_connections(server: RedisServer) -> int:
    """Connections open on ``server`` under our client name (any process)."""
    with server.client(**tls_kwargs(server)) as raw:
        return sum(1 for c in raw.client_list() if c["name"] == NAME)


def blocked_on_server(server: RedisServer) -> int:
    """Clients ``server`` holds in a blocking command (BLPOP, XREAD BLOCK) right now."""
    with server.client(**tls_kwargs(server)) as raw:
        return int(raw.info("clients")["blocked_clients"])


def tls_kwargs(server: RedisServer) -> dict[str, Any]:
    return {"ssl_ca_certs": server.ca_cert} if server.tls else {}


def multiplexer(client: Any) -> Multiplexer:
    assert isinstance(client, MultiplexedRedis) and client.multiplexer is not None
    return client.multiplexer


eventually = functools.partial(polled_until, timeout=DEADLINE)


# -- settings ---------------------------------------------------------------------------------


def test_multiplex_is_a_checked_setting() -> None:
    spec = parse({"a": {"URL": "redis://127.0.0.1:6399/0", "MULTIPLEX": True}})["a"]
    assert spec.multiplex is True
    # The default for asyncio clients (issue 22); False opts out, back to a pool per loop.
    assert parse({"a": {"URL": "redis://127.0.0.1:6399/0"}})["a"].multiplex is True
    assert (
        parse({"a": {"URL": "redis://127.0.0.1:6399/0", "MULTIPLEX": False}})["a"].multiplex
        is False
    )
    with pytest.raises(ConfigurationError) as bad:
        parse({"a": {"URL": "redis://127.0.0.1:6399/0", "MULTIPLEX": "yes"}})
    assert str(bad.value) == (
        "Redis connection 'a' has MULTIPLEX='yes' (str); expected True or False."
    )


def test_multiplex_on_cluster_is_accepted() -> None:
    """CONTRACT section 12 (tests/test_multiplex_cluster.py): no longer E009."""
    spec = parse({"c": {"URL": "redis://127.0.0.1:7000", "CLUSTER": True, "MULTIPLEX": True}})["c"]
    assert (spec.kind, spec.multiplex) == ("cluster", True)


def test_multiplex_on_fake_is_refused_like_every_pool_setting() -> None:
    with pytest.raises(ConfigurationError) as bad:
        parse({"dev": {"FAKE": True, "MULTIPLEX": True}})
    assert str(bad.value) == (
        "Redis connection 'dev' has FAKE and also MULTIPLEX, which a fake in-process server "
        "cannot honour. HINT: Remove them, or set FAKE to False."
    )


def test_sync_clients_stay_pooled(registry: ConnectionRegistry, redis_server: Any) -> None:
    registry.configure({"default": settings(redis_server.url)})
    client = registry.get()
    assert type(client) is NamedRedis
    assert client.set("sync", 1) is True


# -- the shared connection ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp", "unix", "tls", "acl"])
def test_1000_tasks_read_their_own_keys_over_one_connection(
    registry: ConnectionRegistry,
    kind: str,
    redis_server: Any,
    redis_server_b: Any,
    tls_server: Any,
) -> None:
    server = {"acl": redis_server_b, "tls": tls_server}.get(kind, redis_server)
    url = {
        "tcp": redis_server.url,
        "unix": redis_server.unix_url,
        "tls": tls_server.url,
        "acl": redis_server_b.acl_url,
    }[kind]
    extra: dict[str, Any] = {}
    if kind == "tls":
        extra = {"OPTIONS": {"ssl_ca_certs": tls_server.ca_cert}}
    registry.configure({"default": settings(url, **extra)})
    peak = 0

    async def body() -> tuple[list[str], int]:
        nonlocal peak
        r = registry.get_async()
        assert isinstance(r, redis.asyncio.Redis)

        async def task(i: int) -> str:
            wrong = []
            for j in range(10):
                assert await r.set(f"own:{i}", f"{i}-{j}") is True
                got = await r.get(f"own:{i}")
                if got != f"{i}-{j}".encode():
                    wrong.append(f"task {i} round {j} read {got!r}")
                assert await r.incr(f"count:{i}") == j + 1
            return "; ".join(wrong)

        tasks = [asyncio.create_task(task(i)) for i in range(1000)]
        while not all(t.done() for t in tasks):
            peak = max(peak, named_connections(server))
            await asyncio.sleep(0.01)
        who = await r.acl_whoami()
        assert who == ("app" if kind == "acl" else "default")
        return [t.result() for t in tasks if t.result()], multiplexer(r).reconnects

    assert run(registry, body) == ([], 0)
    assert 1 <= peak <= 2


def test_without_hiredis_the_python_parser_reads_the_replies(redis_server: Any) -> None:
    """What runs where hiredis is not installed. Settings cannot pick an asyncio-only parser
    (they are checked against the sync connection too), so the client is built by hand, the
    way build_async_client() builds it."""
    spec = parse({"default": settings(redis_server.url)})["default"]
    resp3 = getattr(redis.utils, "DEFAULT_RESP_VERSION", 2) == 3  # redis-py 8 speaks RESP3
    pool = AsyncGuardedConnectionPool.from_url(
        redis_server.url,
        connection_class=async_connection_class("redis"),
        parser_class=_AsyncRESP3Parser if resp3 else _AsyncRESP2Parser,
        **pool_kwargs(spec),
        **connection_kwargs(spec, AsyncRetry),
    )
    client = multiplexed_client(pool, spec)

    async def body() -> tuple[list[Any], int]:
        try:
            await client.set("big", "x" * 100_000)  # a reply longer than one socket read

            async def task(i: int) -> Any:
                await client.set(f"py:{i}", i)
                return await client.get(f"py:{i}"), await client.strlen("big")

            replies = await asyncio.gather(*(task(i) for i in range(500)))
            return replies, multiplexer(client).reconnects
        finally:
            await aclose_client(client)

    replies, reconnects = asyncio.run(body())
    assert replies == [(str(i).encode(), 100_000) for i in range(500)]
    assert reconnects == 0


def test_redis_py_api_on_the_shared_connection(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url, OPTIONS={"decode_responses": True})})

    async def body() -> tuple[Any, ...]:
        r = registry.get_async()
        await r.set("d", "v")
        dumped = await r.dump("d")  # NEVER_DECODE: bytes even with decode_responses
        async with r.lock("the-lock", timeout=5):  # SET NX, then a Lua script to release
            held = await r.get("the-lock")
        script = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        scripted = await script(keys=["s"], args=[5])
        return dumped, held is not None, await r.get("the-lock"), scripted, await r.hgetall("no")

    dumped, held, released, scripted, empty = run(registry, body)
    assert isinstance(dumped, bytes) and dumped.startswith(b"\x00\x01v")
    assert (held, released, scripted, empty) == (True, None, 5, {})


@pytest.mark.parametrize("options", [{}, {"encoding": "latin-1"}])
def test_values_are_written_as_redis_pys_asyncio_client_writes_them(
    registry: ConnectionRegistry, redis_server: Any, options: dict[str, Any]
) -> None:
    class Level(enum.IntEnum):
        HIGH = 3

    values: list[Any] = [Level.HIGH, 1.5, 2**70, -0.0, memoryview(b"ab"), b"\xff", "é", "x" * 9000]
    registry.configure({"default": settings(redis_server.url, OPTIONS=options)})

    async def body() -> tuple[list[Any], Any]:
        r = registry.get_async()
        plain = redis.asyncio.Redis.from_url(redis_server.url, **options)
        try:
            for i, value in enumerate(values):
                await r.set(f"mux:{i}", value)
                await plain.set(f"plain:{i}", value)
            with pytest.raises(redis.exceptions.DataError) as bad:
                await r.set("bad", None)
        finally:
            await plain.aclose()
        return [
            await r.get(f"mux:{i}") == await r.get(f"plain:{i}") for i in range(len(values))
        ], bad

    same, bad = run(registry, body)
    assert same == [True] * len(values)
    assert str(bad.value) == (
        "Invalid input of type: 'NoneType'. Convert to a bytes, string, int or float first."
    )


def test_a_loop_that_ends_without_aclose_leaves_nothing_open(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url)})

    async def body() -> None:
        assert await registry.get_async().incr("left-open") == 1

    asyncio.run(body())  # no aclose_async(): the loop's end cancels the writer, which closes
    deadline = time.monotonic() + DEADLINE
    while named_connections(redis_server):
        assert time.monotonic() < deadline, "the shared connection was left open"
        time.sleep(0.01)
    registry.close_all()  # the closed loop's client is dropped quietly


def test_an_idle_connection_pings_after_health_check_interval(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    def pings() -> int:
        with redis_server.client() as raw:
            return int(raw.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))

    # "Busy" must stay busy on a loaded machine: the interval is 20 times what a PING count
    # and a command take here and now (at least 0.3 s), and a busy gap that still came out
    # longer than the interval is measured again rather than judged.
    with redis_server.client() as raw:
        began = time.monotonic()
        for _ in range(5):
            pings()
            raw.incr("hc-calibration")
        interval = max(0.3, 20 * (time.monotonic() - began) / 5)
    registry.configure({"default": settings(redis_server.url, HEALTH_CHECK_INTERVAL=interval)})

    async def body() -> tuple[list[int], int]:
        r = registry.get_async()
        loop = asyncio.get_running_loop()
        await r.incr("hc")
        busy: list[int] = []  # PINGs counted over each busy gap short enough to judge
        for _ in range(5):
            last_reply = loop.time()
            before = pings()
            gap = loop.time() - last_reply
            await r.incr("hc")  # busy: no PING
            if gap < interval / 2:
                busy.append(pings() - before)
                break
        before = pings()
        await asyncio.sleep(2 * interval)  # idle for longer than HEALTH_CHECK_INTERVAL
        await r.incr("hc")  # one PING first, and only one
        return busy, pings() - before

    assert run(registry, body) == ([0], 1)


def test_commands_of_one_loop_iteration_go_out_in_one_write(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url)})

    async def body() -> tuple[int, list[Any]]:
        r = registry.get_async()
        await r.ping()  # connected
        mux = multiplexer(r)
        conn = mux._conn
        writes = 0
        send = conn.send_packed_command

        async def counting_send(command: Any, check_health: bool = True) -> None:
            nonlocal writes
            writes += 1
            await send(command, check_health)

        conn.send_packed_command = counting_send  # observe the writes, send for real
        replies = await asyncio.gather(*(r.incr("burst") for _ in range(500)))
        return writes, replies

    writes, replies = run(registry, body)
    assert writes == 1
    assert replies == list(range(1, 501))


def test_commands_cancelled_before_the_write_are_never_sent(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url)})

    async def body() -> Any:
        r = registry.get_async()
        await r.ping()
        tasks = [asyncio.create_task(r.incr("never")) for _ in range(10)]
        await asyncio.sleep(0)  # each task queued its INCR; the writer has not run yet
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return await r.get("never"), multiplexer(r).in_flight

    assert run(registry, body) == (None, 0)


def test_2000_random_cancellations_never_give_a_wrong_reply(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url)})
    rng = random.Random(12)

    async def body() -> tuple[list[str], int, int]:
        r = registry.get_async()
        wrong: list[str] = []
        cancelled = 0

        async def set_then_get(i: int) -> None:
            await r.set(f"cancel:{i}", i)
            got = await r.get(f"cancel:{i}")
            if got != str(i).encode():
                wrong.append(f"GET cancel:{i} read {got!r}")

        async def one(i: int, limit: float) -> None:
            nonlocal cancelled
            try:
                await asyncio.wait_for(set_then_get(i), timeout=rng.uniform(0, limit))
            except TimeoutError:
                cancelled += 1

        # Timeouts up to 3x what the whole burst takes here and now, so that commands are
        # cut off before, while and after they are written, whatever the machine's speed.
        started = time.monotonic()
        await asyncio.gather(*(asyncio.wait_for(set_then_get(i), 60) for i in range(2000)))
        limit = 3 * (time.monotonic() - started)
        await r.delete(*(f"cancel:{i}" for i in range(2000)))
        await asyncio.gather(*(one(i, limit) for i in range(2000)))
        values = await asyncio.gather(*(r.get(f"cancel:{i}") for i in range(2000)))
        for i, value in enumerate(values):
            if value not in (None, str(i).encode()):  # unsent, or its own value
                wrong.append(f"cancel:{i} holds {value!r}")
        return wrong, cancelled, multiplexer(r).reconnects

    wrong, cancelled, reconnects = run(registry, body)
    assert wrong == []
    assert cancelled > 0  # (the timeouts are drawn so that usually some finish too)
    assert reconnects == 0  # cancellations never cost the shared connection


def test_a_batch_cancelled_mid_read_leaves_the_connection_in_sync(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url)})

    batch = 200

    async def body() -> tuple[int, list[Any]]:
        r = registry.get_async()
        mux = multiplexer(r)
        await r.set("after", "ok")
        await r.set("big", "x" * 100_000)

        async def big_batch() -> None:  # 20 MB of replies: the reader waits for many reads
            async with async_pipeline() as p:
                for _ in range(batch):
                    p.get("big")
                await p.execute()  # (a block that ends without it sends nothing)

        # Cancel at the moment some of the batch's replies were read and some were not
        # (in_flight counts the replies still owed), not after a guessed sleep: a cut that
        # lands before the write or after the last reply would prove nothing.
        cut_mid_read = 0
        for _ in range(50):
            task = asyncio.create_task(big_batch())
            while not task.done() and not 0 < mux.in_flight < batch:
                await asyncio.sleep(0)
            if task.done():
                continue  # the loop never saw it mid-read this time; try again
            task.cancel()
            outcome = (await asyncio.gather(task, return_exceptions=True))[0]
            assert isinstance(outcome, asyncio.CancelledError), outcome
            cut_mid_read += 1
            if cut_mid_read == 5:
                break
        return cut_mid_read, await asyncio.gather(r.get("after"), r.incr("after-n"), r.get("after"))

    assert run(registry, body) == (5, [b"ok", 1, b"ok"])


# -- what goes on dedicated connections --------------------------------------------------------


def test_routing_of_blocking_and_stateful_commands() -> None:
    dedicated = [
        ("BLPOP", "q", 0),
        ("BZMPOP", 1, 1, "z", "MIN"),
        ("WAIT", 1, 0),
        ("WAITAOF", 0, 1, 0),
        ("XREAD", b"BLOCK", "100", b"STREAMS", "s", "$"),
        ("XREADGROUP", "GROUP", "g", "c", "block", 5, "STREAMS", "s", ">"),
        ("MULTI",),
        ("WATCH", "k"),
        ("SUBSCRIBE", "ch"),
        ("SELECT", 1),
        ("CLIENT REPLY", "OFF"),
        ("CLIENT", "TRACKING", "ON"),
        (b"client", b"setname", b"x"),
        ("SCRIPT KILL",),
        ("blpop", "q", 0),
    ]
    shared = [
        ("GET", "k"),
        ("XREAD", "COUNT", 1, "STREAMS", "s", "0"),
        ("CLIENT", "ID"),
        ("SCRIPT LOAD", "return 1"),
        ("EVAL", "return 1", 0),
        ("PUBLISH", "ch", "m"),
    ]
    assert [args for args in dedicated if not needs_dedicated(args)] == []
    assert [args for args in shared if needs_dedicated(args)] == []


def test_a_waiting_blpop_does_not_hold_up_1000_gets(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url)})

    async def body() -> tuple[bool, Any, int, Any]:
        r = registry.get_async()
        await r.set("g", "v")
        blpop = asyncio.create_task(r.blpop(["empty-list"], timeout=2))
        await eventually(lambda: r.connection_pool.usage().in_use == 1, "BLPOP leased a conn")
        gets = await asyncio.gather(*(r.get("g") for _ in range(1000)))
        blpop_still_waiting = not blpop.done()
        on_server = named_connections(redis_server)
        await r.rpush("empty-list", "item")
        return blpop_still_waiting, set(gets), on_server, await blpop

    still_waiting, gets, on_server, popped = run(registry, body)
    assert still_waiting
    assert gets == {b"v"}
    assert on_server == 2  # the shared connection and the BLPOP's own
    assert popped == (b"empty-list", b"item")


def test_the_pool_limits_apply_to_dedicated_connections_only(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url, MAX_CONNECTIONS=1, BLOCKING=False)})

    async def body() -> tuple[Any, list[Any], Any]:
        r = registry.get_async()
        first = asyncio.create_task(r.blpop(["q"], timeout=2))
        await eventually(lambda: r.connection_pool.usage().in_use == 1, "BLPOP leased a conn")
        with pytest.raises(PoolExhausted) as full:
            await r.blpop(["q"], timeout=2)
        shared = await asyncio.gather(*(r.incr("beside") for _ in range(100)))
        await r.rpush("q", "x")
        return await first, shared, full.value

    popped, shared, full = run(registry, body)
    assert popped == (b"q", b"x")
    assert shared == list(range(1, 101))
    assert str(full) == (
        "Redis connection 'default': pool exhausted, all connections are in use and the pool "
        "does not block (BLOCKING=False); MAX_CONNECTIONS=1."
    )


def test_blocking_xread_is_dedicated_and_plain_xread_is_shared(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url)})

    async def body() -> tuple[Any, Any, int]:
        r = registry.get_async()
        await r.xadd("s", {"f": "1"})
        plain = await r.xread({"s": "0"})
        blocked = asyncio.create_task(r.xread({"s": "$"}, block=2000))
        await eventually(lambda: r.connection_pool.usage().in_use == 1, "XREAD leased a conn")
        # "$" means "after the last entry when the server runs the XREAD": add only once it waits.
        await eventually(lambda: blocked_on_server(redis_server) == 1, "XREAD waits on the server")
        await r.xadd("s", {"f": "2"})
        return plain, await blocked, r.connection_pool.usage().in_use

    plain, blocked, in_use = run(registry, body)
    assert plain[0][0] == b"s" and plain[0][1][0][1] == {b"f": b"1"}
    assert blocked[0][1][0][1] == {b"f": b"2"}
    assert in_use == 0


def test_pubsub_runs_on_its_own_connection(registry: ConnectionRegistry, redis_server: Any) -> None:
    registry.configure({"default": settings(redis_server.url)})

    async def body() -> tuple[Any, Any]:
        r = registry.get_async()
        async with r.pubsub() as ps:
            await ps.subscribe("news")
            assert (await ps.get_message(timeout=1))["type"] == "subscribe"
            assert await r.publish("news", "hello") == 1  # on the shared connection
            message = await ps.get_message(timeout=DEADLINE)
            other = await r.set("still", "usable")
        return message, other

    message, other = run(registry, body)
    assert (message["channel"], message["data"]) == (b"news", b"hello")
    assert other is True


def test_watch_transactions_get_a_dedicated_connection(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url)})

    async def body() -> tuple[list[Any], int, Any, int]:
        r = registry.get_async()
        await r.set("balance", 10)
        attempts = 0

        async def spend(pipe: Any) -> None:
            nonlocal attempts
            attempts += 1
            balance = int(await pipe.get("balance"))
            if attempts == 1:
                await r.incr("balance")  # a concurrent change: the first EXEC must fail
            pipe.multi()
            pipe.set("balance", balance - 3)

        result = await r.transaction(spend, "balance")
        async with r.pipeline(transaction=True) as pipe:
            await pipe.watch("balance")
            await r.set("balance", 0)  # changed behind the watch
            pipe.multi()
            pipe.incr("balance")
            with pytest.raises(WatchError):
                await pipe.execute()
        return result, attempts, await r.get("balance"), r.connection_pool.usage().in_use

    result, attempts, balance, in_use = run(registry, body)
    assert (result, attempts, balance, in_use) == ([True], 2, b"0", 0)


def test_pipelines_without_watch_share_the_connection(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url, OPTIONS={"decode_responses": True})})

    async def body() -> tuple[list[Any], list[Any], Any, int]:
        r = registry.get_async()
        await r.set("dumped", "v")
        async with r.pipeline(transaction=False) as p:
            p.set("p", 1).incr("p").get("p").dump("dumped").lpush("p", "x")
            plain = await p.execute(raise_on_error=False)
        async with r.pipeline() as p:
            p.set("t", 1).incr("t").get("t")
            transaction = await p.execute()
        async with async_pipeline(autocommit=True) as ap:
            dumped = ap.dump("dumped")
            ap.get("t")
        return plain, transaction, dumped.result, named_connections(redis_server)

    plain, transaction, dumped, on_server = run(registry, body)
    assert plain[:3] == [True, 2, "2"]
    assert isinstance(plain[3], bytes)  # DUMP is never decoded, even with decode_responses
    assert "WRONGTYPE" in str(plain[4])
    assert transaction == [True, 2, "2"]
    assert dumped == plain[3]
    assert on_server == 1


def test_async_pipelines_send_each_batch_on_the_shared_connection(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url), "alias": {"ALIAS": "default"}})

    async def body() -> tuple[list[list[Any]], list[Any], int]:
        async def one(i: int) -> list[Any]:
            async with async_pipeline(name="alias", autocommit=True) as p:
                futures = [p.incr(f"ap:{i}") for _ in range(50)]
            return [f.result for f in futures]

        plain = await asyncio.gather(*(one(i) for i in range(20)))
        async with async_pipeline(transaction=True, autocommit=True) as p:
            t = [p.incr("tx"), p.incr("tx"), p.mget([])]
        return plain, [f.result for f in t], named_connections(redis_server)

    plain, transaction, on_server = run(registry, body)
    assert plain == [list(range(1, 51))] * 20
    assert transaction == [1, 2, []]
    assert on_server == 1


def test_the_request_pipelines_async_flush_uses_the_shared_connection(
    registry: ConnectionRegistry, redis_server: Any, redis_server_b: Any
) -> None:
    registry.configure(
        {"default": settings(redis_server.url), "other": {"URL": redis_server_b.url}}
    )

    async def body() -> tuple[list[Any], int]:
        scope = RequestPipeline(registry)
        hits = scope.pipeline.incr("hits")
        elsewhere = scope.pipeline["other"].incr("hits")  # pooled: sent from the loop as well
        await scope.aflush()
        in_view = RequestPipeline(registry)
        proxy = PipelineProxy(in_view)
        more = proxy.incr("hits")
        await proxy.aexecute()
        return [hits.result, elsewhere.result, more.result], named_connections(redis_server)

    results, on_server = run(registry, body)
    assert results == [1, 1, 2]
    assert on_server == 1  # the shared connection only: no sync pool, no worker thread


# -- failures ------------------------------------------------------------------------------------


def test_a_killed_connection_fails_writes_and_resends_reads_once(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    """CLIENT PAUSE WRITE holds the INCRs (and the GET behind them) in flight; CLIENT KILL
    drops the connection: the INCRs may or may not have run (here: not), the GET is sent again.
    """
    registry.configure({"default": settings(redis_server.url)})
    admin = redis_server.client()

    async def body() -> tuple[list[Any], Any, Any, int, Any]:
        r = registry.get_async()
        await r.set("read-me", "v")
        mux_id = await r.client_id()
        admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        try:
            incrs = [asyncio.create_task(r.incr("paused")) for _ in range(3)]
            get = asyncio.create_task(r.get("read-me"))
            await eventually(
                lambda: multiplexer(r).in_flight == 4 and not multiplexer(r)._pending,
                "4 commands written",
            )
            admin.client_kill_filter(_id=mux_id)
            outcomes = await asyncio.gather(*incrs, return_exceptions=True)
            got = await get
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
        return outcomes, got, await r.incr("paused"), multiplexer(r).reconnects, mux_id

    try:
        outcomes, got, counter, reconnects, _ = run(registry, body)
    finally:
        admin.close()
    assert [type(o) for o in outcomes] == [ConnectionLostAfterWrite] * 3
    assert str(outcomes[0]) == (
        "Redis connection 'default': the shared connection was lost (Connection closed by "
        "server) after INCRBY was sent; it may or may not have run, and it was not sent again."
    )
    assert isinstance(outcomes[0], RedisConnectionError) and isinstance(outcomes[0], OutcomeUnknown)
    assert got == b"v"  # read-only: sent again on the new connection
    assert counter == 1  # the 3 lost INCRs never ran and were never re-sent
    assert reconnects == 1


def test_server_killed_mid_flight_then_restarted(
    registry: ConnectionRegistry, killable_server: RedisServer
) -> None:
    server = killable_server
    registry.configure({"default": settings(server.url, RETRY=0, SOCKET_TIMEOUT=None)})

    async def body() -> tuple[list[Any], Any, Any]:
        r = registry.get_async()
        await r.incr("n")
        server.pause()  # what is sent now stays in flight
        incrs = [asyncio.create_task(r.incr("n")) for _ in range(50)]
        gets = [asyncio.create_task(r.get("n")) for _ in range(50)]
        await eventually(lambda: multiplexer(r).in_flight == 100, "100 commands written")
        server.kill()
        outcomes = await asyncio.gather(*incrs, *gets, return_exceptions=True)
        server.restart()
        first = await r.incr("n")  # the next command reconnects
        return outcomes, first, multiplexer(r).reconnects

    outcomes, first, reconnects = run(registry, body)
    assert [type(o) for o in outcomes[:50]] == [ConnectionLostAfterWrite] * 50
    # RETRY=0: the GETs are not sent again either, and say so without "may or may not".
    assert [type(o) for o in outcomes[50:]] == [RedisConnectionError] * 50
    # A killed server closes the socket (EOF) or resets it (unread data): either is named.
    lost = rf"(Connection closed by server|Error while reading from 127\.0\.0\.1:{server.port} "
    lost += r": \(104, 'Connection reset by peer'\))"
    assert re.fullmatch(
        rf"Redis connection 'default': the shared connection was lost \({lost}\) before the reply "
        r"to GET arrived\.",
        str(outcomes[50]),
    ), str(outcomes[50])
    assert first == 1  # a fresh server: none of the 50 lost INCRs was sent again
    assert reconnects == 1


def test_a_reply_later_than_socket_timeout_fails_what_is_in_flight(
    registry: ConnectionRegistry, killable_server: RedisServer
) -> None:
    server = killable_server
    registry.configure({"default": settings(server.url, SOCKET_TIMEOUT=0.3)})

    async def body() -> tuple[list[Any], Any, int, int]:
        r = registry.get_async()
        await r.set("k", "v")
        server.pause()
        try:
            outcomes = await asyncio.gather(r.incr("k2"), r.get("k"), return_exceptions=True)
        finally:
            server.resume()
        again = await r.get("k")
        await eventually(lambda: named_connections(server) == 1, "the old connection closed")
        return outcomes, again, multiplexer(r).reconnects, named_connections(server)

    outcomes, again, reconnects, on_server = run(registry, body)
    incr, get = outcomes
    assert type(incr) is TimeoutAfterWrite and isinstance(incr, RedisTimeoutError)
    assert str(incr) == (
        "Redis connection 'default': no reply within SOCKET_TIMEOUT=0.3s after INCRBY was sent; "
        "it may or may not have run, and it was not sent again."
    )
    assert type(get) is RedisTimeoutError
    assert str(get) == (
        "Redis connection 'default': no reply within SOCKET_TIMEOUT=0.3s to GET; the shared "
        "connection was closed."
    )
    assert again == b"v"
    assert (reconnects, on_server) == (1, 1)


def test_a_connection_closed_while_idle_reconnects_without_an_error(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url)})

    async def body() -> tuple[Any, int]:
        r = registry.get_async()
        mux_id = await r.client_id()
        with redis_server.client() as admin:
            admin.client_kill_filter(_id=mux_id)
        await eventually(lambda: named_connections(redis_server) == 0, "the kill landed")
        await asyncio.sleep(0.05)  # let the loop see the EOF
        return await r.incr("idle-kill"), multiplexer(r).reconnects

    assert run(registry, body) == (1, 1)


def test_an_unreachable_server_fails_commands_as_never_sent(
    registry: ConnectionRegistry, killable_server: RedisServer
) -> None:
    url = killable_server.url
    killable_server.kill()
    registry.configure({"default": settings(url, RETRY=1)})

    async def body() -> list[Any]:
        r = registry.get_async()
        return await asyncio.gather(r.incr("x"), r.get("x"), return_exceptions=True)

    outcomes = run(registry, body)
    assert [type(o) for o in outcomes] == [RedisConnectionError] * 2
    assert not any(isinstance(o, OutcomeUnknown) for o in outcomes)
    assert str(outcomes[0]).startswith(
        f"Redis connection 'default': Error 111 connecting to 127.0.0.1:{killable_server.port}."
    )


def test_a_wrong_password_fails_at_once_without_showing_it(
    registry: ConnectionRegistry, redis_server_b: Any
) -> None:
    url = redis_server_b.acl_url.replace("app-s3cret-pw", "wrong-pw")
    registry.configure({"default": settings(url, RETRY=3)})

    async def body() -> tuple[list[Any], float]:
        r = registry.get_async()
        started = time.monotonic()
        outcomes = await asyncio.gather(r.get("a"), r.get("b"), return_exceptions=True)
        return outcomes, time.monotonic() - started

    outcomes, _ = run(registry, body)
    assert [type(o) for o in outcomes] == [AuthenticationError] * 2
    assert "wrong-pw" not in str(outcomes[0]) and "wrong-pw" not in repr(outcomes[0])


def test_closing_the_client_fails_waiters_and_the_next_command_reconnects(
    registry: ConnectionRegistry, killable_server: RedisServer
) -> None:
    server = killable_server
    registry.configure({"default": settings(server.url)})

    async def body() -> tuple[Any, Any]:
        r = registry.get_async()
        await r.set("k", "v")
        server.pause()
        waiting = asyncio.create_task(r.get("k"))
        await eventually(lambda: multiplexer(r).in_flight == 1, "GET in flight")
        await r.aclose()
        server.resume()
        closed = await asyncio.gather(waiting, return_exceptions=True)
        return closed[0], await r.get("k")

    closed, again = run(registry, body)
    assert type(closed) is RedisConnectionError
    assert str(closed) == (
        "Redis connection 'default': the asyncio client was closed while the command waited."
    )
    assert again == b"v"


def test_a_client_used_on_another_loop_says_so(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": settings(redis_server.url)})
    clients: list[Any] = []

    async def first() -> None:
        clients.append(registry.get_async())
        await clients[0].ping()

    async def second() -> None:
        with pytest.raises(RuntimeError) as wrong:
            await clients[0].ping()
        assert str(wrong.value) == (
            "Redis connection 'default': this multiplexed client belongs to another event "
            "loop; call get_async_redis('default') in this one."
        )

    run(registry, first)
    asyncio.run(second())


# -- health --------------------------------------------------------------------------------------


def test_health_shows_mode_and_commands_in_flight(
    registry: ConnectionRegistry, killable_server: RedisServer, redis_server: Any
) -> None:
    server = killable_server
    registry.configure(
        {
            "default": settings(server.url, SOCKET_TIMEOUT=None),
            "pooled": {"URL": redis_server.url, "MULTIPLEX": False},
        }
    )

    async def body() -> tuple[dict[str, Any], dict[str, Any]]:
        r = registry.get_async()
        await r.ping()
        server.pause()
        waiting = [asyncio.create_task(r.incr("h")) for _ in range(7)]
        await eventually(lambda: multiplexer(r).in_flight == 7, "7 in flight")
        busy = registry.health(ping=False)
        server.resume()
        await asyncio.gather(*waiting)
        return busy, registry.health(ping=False)

    busy, calm = run(registry, body)
    default, pooled = busy["connections"]
    assert default["mode"] == "multiplexed" and pooled["mode"] == "pooled"
    assert default["multiplex"] == {
        "event_loops": 1,
        "connected": 1,
        "in_flight": 7,
        "reconnects": 0,
    }
    assert pooled["multiplex"] is None
    assert calm["connections"][0]["multiplex"]["in_flight"] == 0
    assert (
        "default: multiplexed (asyncio): 7 in flight on 1 shared connection(s) of 1 event "
        "loop(s), 0 reconnect(s)"
    ) in render(busy).splitlines()


# -- Sentinel failover ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_shared_connection_follows_a_sentinel_failover(
    private_sentinel: SentinelDeployment,
) -> None:
    deployment = private_sentinel
    registry = connections
    registry.configure(
        {
            "ha": {
                "SENTINELS": deployment.sentinels,
                "SERVICE_NAME": deployment.service_name,
                "SOCKET_TIMEOUT": 0.5,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "RETRY": 1,
                "MULTIPLEX": True,
            }
        }
    )

    async def body() -> tuple[list[str], Any, int, Any]:
        r = registry.get_async("ha")
        assert isinstance(r, MultiplexedRedis)
        assert await r.set("before", "1") is True
        for _ in range(30):
            # WAIT waits for its own connection's writes: the SET goes with it (a pipeline
            # with a blocking command runs on a dedicated connection as a whole).
            async with r.pipeline(transaction=False) as pipe:
                _, replicated = await pipe.set("before", "1").wait(1, 300).execute()
            if replicated == 1:
                break
        deployment.primary.kill()
        errors: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                await r.set("after", "1")
                break
            except RedisConnectionError as exc:
                errors.append(type(exc).__name__)
                await asyncio.sleep(0.05)
        return errors, await r.get("before"), multiplexer(r).reconnects, await r.get("after")

    try:
        errors, before, reconnects, after = run(registry, body)
        assert deployment.primary_address() == ("127.0.0.1", deployment.replica.port)
        assert after == b"1" and before == b"1"
        assert reconnects >= 1
        assert set(errors) <= {
            "ConnectionError",
            "MasterNotFoundError",
            "TimeoutError",
            "ConnectionLostAfterWrite",
            "TimeoutAfterWrite",
        }
    finally:
        registry.configure(None)


def test_multiplex_is_the_default_for_every_kind_but_fake() -> None:
    """Issue 22: asyncio clients multiplex unless MULTIPLEX is False; a FAKE connection has
    no connection to share (and MULTIPLEX given with FAKE is E009, above)."""
    specs = parse(
        {
            "tcp": {"URL": "redis://127.0.0.1:6399/0"},
            "ha": {"SENTINELS": [("127.0.0.1", 26399)], "SERVICE_NAME": "m"},
            "cluster": {"URL": "redis://127.0.0.1:7000", "CLUSTER": True},
            "out": {"URL": "redis://127.0.0.1:6399/0", "MULTIPLEX": False},
            "dev": {"FAKE": True},
        }
    )
    assert {name: spec.multiplex for name, spec in specs.items()} == {
        "tcp": True,
        "ha": True,
        "cluster": True,
        "out": False,
        "dev": False,
    }


def test_a_connection_without_the_key_shares_one_connection_for_1000_tasks(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {
            "plain": {"URL": redis_server.url},
            "out": {"URL": redis_server.url, "MULTIPLEX": False},
        }
    )

    async def body() -> tuple[type, type, int, int]:
        plain, out = registry.get_async("plain"), registry.get_async("out")
        await asyncio.gather(*(plain.incr("mux-default") for _ in range(1000)))
        await asyncio.gather(*(out.incr("mux-opted-out") for _ in range(200)))
        with redis_server.client() as raw:
            names = [c["name"] for c in raw.client_list()]
        return type(plain), type(out), names.count("plain"), names.count("out")

    plain_type, out_type, shared, pooled = run(registry, body)
    assert issubclass(plain_type, MultiplexedRedis) and not issubclass(out_type, MultiplexedRedis)
    assert shared == 1  # 1,000 concurrent INCRs on one connection
    assert pooled > 1  # 200 concurrent INCRs borrowed several pooled connections
    with redis_server.client() as raw:
        assert raw.get("mux-default") == b"1000" and raw.get("mux-opted-out") == b"200"
