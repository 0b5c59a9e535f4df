"""CLIENT_CACHE (CONTRACT section 11), against real servers.

Reads through ``get_redis`` and ``get_async_redis`` (pooled and MULTIPLEX) are answered from
process memory while valid; any client's write, an expiry, FLUSHDB, a lost invalidation
connection, a server restart or a fork empties what could be stale. Served locally is checked
on the server too (its GET count does not move), stale never: every read is compared with
what a plain redis-py client sees.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from redis_conn import ConnectionRegistry
from redis_conn.async_pipeline import async_pipeline
from redis_conn.client_cache import LOCAL_READS, MISSING, ClientCache
from redis_conn.client_cache_settings import CacheSettings
from redis_conn.config import parse
from redis_conn.entries import validate
from redis_conn.health_text import render
from redis_conn.pipeline import pipeline
from redis_conn.registry import connections

try:
    from servers import RedisServer, SentinelDeployment, wait_until
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import RedisServer, SentinelDeployment, wait_until

DEADLINE = 10.0
MODES = ("sync", "async", "multiplex")
_names = itertools.count()


class Reader:
    """One client of the cached connection, sync or asyncio (pooled or MULTIPLEX), called
    the same way: ``reader("get", "k")``."""

    def __init__(self, registry: ConnectionRegistry, mode: str) -> None:
        self.registry = registry
        self.mode = mode
        self.loop = None if mode == "sync" else asyncio.new_event_loop()
        name = "mux" if mode == "multiplex" else "cached"
        if self.loop is None:
            self.client: Any = registry.get(name)
        else:
            self.client = self.loop.run_until_complete(self._async_client(name))
        self.cache = registry.client_cache(name)
        assert self.cache is not None

    async def _async_client(self, name: str) -> Any:
        return self.registry.get_async(name)

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, method)(*args, **kwargs)
        return result if self.loop is None else self.loop.run_until_complete(result)

    def run(self, call: Callable[[], Any]) -> Any:
        """A sync callable, or a coroutine function on this reader's loop."""
        result = call()
        return result if self.loop is None else self.loop.run_until_complete(result)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.registry.aclose_async())
            self.loop.close()


@pytest.fixture
def make_registry() -> Iterator[Callable[..., ConnectionRegistry]]:
    made: list[ConnectionRegistry] = []

    def make(url: str, cache: Any = True, **extra: Any) -> ConnectionRegistry:
        name = f"cc-test-{next(_names)}"
        entry = {"URL": url, "CLIENT_CACHE": cache, "OPTIONS": {"client_name": name}, **extra}
        registry = ConnectionRegistry(
            {
                "cached": entry,
                "mux": {**entry, "MULTIPLEX": True},
                "plain": {"URL": url},
            }
        )
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.close_all()


@pytest.fixture
def readers(
    make_registry: Callable[..., ConnectionRegistry],
) -> Iterator[Callable[..., Reader]]:
    made: list[Reader] = []

    def make(url: str, mode: str, **extra: Any) -> Reader:
        reader = Reader(make_registry(url, **extra), mode)
        made.append(reader)
        wait_until(lambda: reader.cache.listening, DEADLINE, lambda: f"{reader.cache!r} listens")
        return reader

    yield make
    for reader in made:
        reader.close()


def server_gets(server: RedisServer) -> int:
    stats = server.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


def local_until_valid(reader: Reader, method: str, *args: Any) -> Any:
    """Read until the reply is kept (a read that raced the listener's first flush is not);
    then the next read must be a hit: returns that reply."""
    cache = reader.cache

    def kept() -> bool:
        before = cache.hits
        reader(method, *args)
        return cache.hits > before

    reader(method, *args)
    wait_until(kept, DEADLINE, lambda: f"{method} {args} answered locally")
    return reader(method, *args)


# -- what is served locally, and that it equals the server's answer ---------------------------


@pytest.mark.parametrize("mode", MODES)
def test_reads_are_answered_locally_and_equal_the_servers(
    redis_server: RedisServer, readers: Callable[..., Reader], mode: str
) -> None:
    reader = readers(redis_server.url, mode)
    with redis_server.client() as plain:
        plain.set("s", "value")
        plain.hset("h", mapping={"a": "1", "b": "2"})
        reads: list[tuple[str, tuple[Any, ...], Any]] = [
            ("get", ("s",), plain.get("s")),
            ("get", ("absent",), None),
            ("mget", (["s", "absent"],), plain.mget(["s", "absent"])),
            ("hget", ("h", "a"), plain.hget("h", "a")),
            ("hmget", ("h", ["a", "b", "c"]), plain.hmget("h", ["a", "b", "c"])),
            ("hgetall", ("h",), plain.hgetall("h")),
            ("exists", ("s",), 1),
            ("exists", ("absent",), 0),
            ("strlen", ("s",), 5),
        ]
        for method, args, expected in reads:
            assert local_until_valid(reader, method, *args) == expected, (method, args)
        gets = server_gets(redis_server)
        hits = reader.cache.hits
        for _ in range(50):
            for method, args, expected in reads:
                assert reader(method, *args) == expected, (method, args)
        assert reader.cache.hits == hits + 50 * len(reads)
        assert server_gets(redis_server) == gets  # not one GET reached the server
        # A reply handed out is the caller's: changing it changes no later answer.
        reader("hgetall", "h")["a"] = "changed"
        assert reader("hgetall", "h") == plain.hgetall("h")


# -- what invalidates --------------------------------------------------------------------------

WRITES: dict[str, Callable[[redis.Redis], Any]] = {
    "set": lambda plain: plain.set("k", "new"),
    "del": lambda plain: plain.delete("k"),
    "expire": lambda plain: plain.pexpire("k", 1),
    "flushdb": lambda plain: plain.flushdb(),
    "hset": lambda plain: plain.hset("h", "f", "new"),
    "eval": lambda plain: plain.eval("return redis.call('SET', KEYS[1], 'new')", 1, "k"),
}


def _read_for(write: str) -> tuple[str, tuple[Any, ...]]:
    return ("hget", ("h", "f")) if write == "hset" else ("get", ("k",))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("write", list(WRITES))
def test_another_clients_write_invalidates(
    redis_server: RedisServer, readers: Callable[..., Reader], mode: str, write: str
) -> None:
    reader = readers(redis_server.url, mode)
    method, args = _read_for(write)
    with redis_server.client() as plain:
        plain.set("k", "old")
        plain.hset("h", "f", "old")
        assert local_until_valid(reader, method, *args) == b"old"

        WRITES[write](plain)
        if write == "expire":  # the key lives 1 ms more: wait for the server to drop it
            wait_until(lambda: plain.get("k") is None, DEADLINE, lambda: "k expired")
        truth = plain.execute_command(method.upper(), *args)
        assert truth != b"old"

        # The invalidation travels to the listener: poll (bounded) until the read is fresh,
        # and from then on it stays fresh.
        wait_until(
            lambda: reader(method, *args) == truth,
            DEADLINE,
            lambda: f"{method} {args} fresh after {write}",
        )
        for _ in range(20):
            assert reader(method, *args) == truth


@pytest.mark.parametrize("mode", MODES)
def test_a_process_reads_its_own_writes_at_once(
    redis_server: RedisServer, readers: Callable[..., Reader], mode: str
) -> None:
    """A write through the cached client or its pipeline drops the local copy before it
    returns: the very next read is the new value, every time (no waiting for the server's
    invalidation)."""
    reader = readers(redis_server.url, mode)

    async def in_a_pipeline(value: str) -> Any:
        pipe = reader.client.pipeline(transaction=False)
        pipe.set("k", value)
        return await pipe.execute()

    for round_ in range(20):
        local_until_valid(reader, "get", "k")
        reader("set", "k", f"{round_}a")
        assert reader("get", "k") == f"{round_}a".encode()
        local_until_valid(reader, "get", "k")
        if reader.loop is None:
            pipe = reader.client.pipeline()
            pipe.set("k", f"{round_}b")
            pipe.execute()
        else:
            reader.run(lambda value=f"{round_}b": in_a_pipeline(value))
        assert reader("get", "k") == f"{round_}b".encode()


@pytest.mark.parametrize("is_async", [False, True])
def test_a_redis_conn_pipelines_writes_drop_local_copies_before_execute_returns(
    redis_server: RedisServer, is_async: bool
) -> None:
    saved = connections.source
    name = f"cc-test-{next(_names)}"
    connections.configure(
        {
            "default": {
                "URL": redis_server.url,
                "CLIENT_CACHE": True,
                "MULTIPLEX": is_async,
                "OPTIONS": {"client_name": name},
            }
        }
    )
    try:
        reader = Reader.__new__(Reader)
        reader.registry, reader.mode = connections, "async" if is_async else "sync"
        reader.loop = asyncio.new_event_loop() if is_async else None
        if reader.loop is None:
            reader.client = connections.get("default")
        else:
            reader.client = reader.loop.run_until_complete(reader._async_client("default"))
        reader.cache = connections.client_cache("default")
        wait_until(lambda: reader.cache.listening, DEADLINE, lambda: "listening")

        async def write_async(value: str) -> None:
            async with async_pipeline() as p:
                p.set("k", value)
                await p.execute()

        for round_ in range(10):
            local_until_valid(reader, "get", "k")
            if reader.loop is None:
                with pipeline() as p:
                    p.set("k", str(round_))
                    p.execute()
            else:
                reader.run(lambda value=str(round_): write_async(value))
            assert reader("get", "k") == str(round_).encode()
        reader.close()
    finally:
        connections.close_all()
        saved.apply_to(connections)


def test_a_read_that_races_an_invalidation_is_not_kept() -> None:
    """The in-flight rule, step by step: a reply for a key invalidated (or flushed) while its
    read was in flight is returned to its caller but never kept."""
    cache = ClientCache("race", CacheSettings())
    cache.encode = str.encode
    cache.listening_started()
    what = ("GET", False)
    ticket = cache.begin([b"k"])
    cache.invalidate([b"k"])  # the server announced a write while the reply travelled
    cache.finish(ticket, [b"k"], [(b"k", what, b"old")])
    assert cache.local(b"k", what) is MISSING
    # Two readers in flight, one invalidation: neither stores; a later read does.
    first, second = cache.begin([b"k"]), cache.begin([b"k"])
    cache.invalidate([b"k"])
    cache.finish(first, [b"k"], [(b"k", what, b"old")])
    cache.finish(second, [b"k"], [(b"k", what, b"old")])
    assert cache.local(b"k", what) is MISSING
    third = cache.begin([b"k"])
    cache.finish(third, [b"k"], [(b"k", what, b"new")])
    assert cache.local(b"k", what) == b"new"
    # A flush (a lost listener, FLUSHALL) while in flight: never kept.
    fourth = cache.begin([b"j"])
    cache.flush()
    cache.finish(fourth, [b"j"], [(b"j", what, b"old")])
    assert cache.local(b"j", what) is MISSING
    # Not listening: nothing is kept at all.
    cache.listening_lost()
    assert cache.begin([b"i"]) is None


# -- a writer at ~1,000 writes/s: no reader ever goes back in time --------------------------------


def _writer(url: str, stop_at: float, ready: Any) -> None:
    client = redis.Redis.from_url(url)
    ready.set()
    value = 0
    next_at = time.monotonic()
    while time.monotonic() < stop_at:
        value += 1
        client.set("counter", value)
        next_at += 0.001  # ~1,000 writes/s, paced without drifting
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    client.close()


@pytest.mark.parametrize("mode", MODES)
def test_readers_never_see_a_value_older_than_one_visible_10ms_before(
    redis_server: RedisServer, readers: Callable[..., Reader], mode: str
) -> None:
    reader = readers(redis_server.url, mode)
    plain = redis.Redis.from_url(redis_server.url)
    plain.set("counter", 0)
    local_until_valid(reader, "get", "counter")
    duration = 2.0
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    writer = context.Process(
        target=_writer, args=(redis_server.url, time.monotonic() + duration + 1.0, ready)
    )
    writer.start()
    try:
        assert ready.wait(DEADLINE)
        seen: list[tuple[float, int]] = []  # (when, what the server had): the truth
        violations: list[str] = []
        hits_before = reader.cache.hits
        reads = 0
        end = time.monotonic() + duration
        while time.monotonic() < end:
            now = time.monotonic()
            truth = int(plain.get("counter") or 0)
            seen.append((time.monotonic(), truth))
            for _ in range(20):
                at = time.monotonic()
                value = int(reader("get", "counter") or 0)
                reads += 1
                # The newest value the server showed at least 10 ms before this read.
                floor = max((v for t, v in seen if t <= at - 0.010), default=0)
                if value < floor:
                    violations.append(f"read {value} at +{at - now:.4f}s, {floor} was visible")
            seen = [(t, v) for t, v in seen if t > time.monotonic() - 0.5] or seen[-1:]
        hits = reader.cache.hits - hits_before
    finally:
        writer.join(DEADLINE)
        plain.close()
    assert not violations, violations[:5]
    # The cache was really serving (between writes 1 ms apart, and while its listener kept up).
    assert hits >= 100, (hits, reads)


# -- losing the listener, a restart, killed connections ---------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kill", ["pubsub", "normal", "restart"])
def test_killed_connections_and_restarts_never_yield_the_old_value(
    killable_server: RedisServer, readers: Callable[..., Reader], mode: str, kill: str
) -> None:
    reader = readers(killable_server.url, mode)
    flushes = reader.cache.flushes
    with killable_server.client() as plain:
        plain.set("k", "old")
    assert local_until_valid(reader, "get", "k") == b"old"
    if kill == "restart":
        killable_server.restart()  # nothing on disk: the key is gone after it
    else:
        with killable_server.client() as plain:
            plain.client_kill_filter(_type=kill)
    with killable_server.client() as plain:
        plain.set("k", "new")
        value = plain.get("k")
    written = time.monotonic()
    # Within the invalidation delay either value may be read; from 10 ms after the write
    # was acknowledged on, only the new one (the bound of the writer test below).
    stale: list[float] = []
    while time.monotonic() < written + 0.2:
        started = time.monotonic()
        try:
            got = reader("get", "k")
        except redis.ConnectionError:  # the data connection died with the server: not stale
            continue
        if got != value and started > written + 0.010:
            stale.append(started - written)
    assert not stale, f"the old value was read {len(stale)} times, from +{stale[0]:.4f}s"
    if kill != "normal":
        assert reader.cache.flushes > flushes
        wait_until(lambda: reader.cache.listening, DEADLINE, lambda: "listening again")
    assert local_until_valid(reader, "get", "k") == value


# -- bounds --------------------------------------------------------------------------------------


def test_least_recently_used_entries_go_past_max_entries_and_bytes(
    redis_server: RedisServer, readers: Callable[..., Reader]
) -> None:
    reader = readers(redis_server.url, "sync", cache={"MAX_ENTRIES": 3, "MAX_BYTES": 16384})
    cache = reader.cache
    with redis_server.client() as plain:
        for key in "abcde":
            plain.set(key, key * 10)
        plain.set("big", "x" * 2000)  # more than 16384 / 16: never kept
    for key in "abc":
        local_until_valid(reader, "get", key)
    reader("get", "a")  # a is now the most recently used
    local_until_valid(reader, "get", "d")  # evicts b, the least recently used
    assert cache.entries == 3
    hits = cache.hits
    assert reader("get", "a") == b"a" * 10 and cache.hits == hits + 1
    assert reader("get", "b") == b"b" * 10 and cache.hits == hits + 1  # b was evicted
    for _ in range(3):
        assert reader("get", "big") == b"x" * 2000
    assert cache.hits == hits + 1
    assert cache.entries <= 3 and cache.bytes <= 16384


# -- fork ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_forked_child_starts_with_an_empty_cache_and_never_serves_the_parents(
    redis_server: RedisServer, readers: Callable[..., Reader]
) -> None:
    reader = readers(redis_server.url, "sync")
    with redis_server.client() as plain:
        plain.set("k", "before fork")
    local_until_valid(reader, "get", "k")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            cache = reader.cache
            report = {"entries": cache.entries, "listening": cache.listening}
            with redis.Redis.from_url(redis_server.url) as plain:
                plain.set("k", "written by the child")
            report["read"] = reader("get", "k").decode()
            deadline = time.monotonic() + DEADLINE
            while not cache.listening and time.monotonic() < deadline:
                time.sleep(0.01)
            report["listening_later"] = cache.listening
            os.write(write_end, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    report = json.loads(os.read(read_end, 4096))
    os.close(read_end)
    assert status == 0
    assert report == {
        "entries": 0,
        "listening": False,
        "read": "written by the child",
        "listening_later": True,
    }
    # The parent was told by its own listener.
    wait_until(
        lambda: reader("get", "k") == b"written by the child",
        DEADLINE,
        lambda: "the parent sees the child's write",
    )


# -- Sentinel --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sentinel_connection_caches_and_a_failover_empties_the_cache(
    private_sentinel: SentinelDeployment,
) -> None:
    name = f"cc-test-{next(_names)}"
    registry = ConnectionRegistry(
        {
            "cached": {
                "SENTINELS": private_sentinel.sentinels,
                "SERVICE_NAME": private_sentinel.service_name,
                "CLIENT_CACHE": True,
                "SOCKET_TIMEOUT": 0.5,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "RETRY": 1,
                "OPTIONS": {"client_name": name},
            }
        }
    )
    try:
        reader = Reader(registry, "sync")
        wait_until(lambda: reader.cache.listening, DEADLINE, lambda: "listening")
        reader("set", "k", "old")
        assert local_until_valid(reader, "get", "k") == b"old"
        flushes = reader.cache.flushes
        private_sentinel.primary.kill()
        wait_until(lambda: reader.cache.flushes > flushes, DEADLINE, lambda: "flushed on the loss")

        def written() -> bool:
            try:
                return bool(reader("set", "k", "after failover"))
            except redis.ConnectionError:  # ConnectionLostAfterWrite, MasterNotFoundError...
                return False

        wait_until(written, 60.0, lambda: "a write reaches the promoted replica")
        assert reader("get", "k") == b"after failover"
        wait_until(lambda: reader.cache.listening, 60.0, lambda: "listening on the new primary")
        assert local_until_valid(reader, "get", "k") == b"after failover"
    finally:
        registry.close_all()


# -- visible: health, the report's text, the debug-toolbar recorder -------------------------


def test_health_reports_the_counts_and_the_text_shows_them(
    redis_server: RedisServer, readers: Callable[..., Reader]
) -> None:
    reader = readers(redis_server.url, "sync")
    with redis_server.client() as plain:
        plain.set("k", "v")
    local_until_valid(reader, "get", "k")
    report = reader.registry.health(names=["cached"])
    entry = report["connections"][0]
    counts = entry["client_cache"]
    assert counts["listening"] is True
    assert counts["entries"] == 1 and counts["hits"] >= 1 and counts["misses"] >= 1
    assert {"bytes", "invalidations", "flushes"} <= set(counts)
    assert entry["status"] == "ok"
    assert "cached: client cache listening: 1 entries" in render(report)
    plain_entry = reader.registry.health(names=["plain"])["connections"][0]
    assert plain_entry["client_cache"] is None
    # The budget counts the invalidation connection: one more per process.
    budgeted = reader.registry.health(names=["cached", "plain"], workers=2)["connections"]
    assert [c["budget"]["total"] for c in budgeted] == [2 * 51, 2 * 50]


def test_local_reads_are_written_down_for_the_toolbar(
    redis_server: RedisServer, readers: Callable[..., Reader]
) -> None:
    reader = readers(redis_server.url, "sync")
    local_until_valid(reader, "get", "user:1")
    recorded: list[Any] = []
    token = LOCAL_READS.set(recorded)
    try:
        reader("get", "user:1")
    finally:
        LOCAL_READS.reset(token)
    reader("get", "user:1")  # nobody listening: nothing written down
    assert [(r.connection, r.command) for r in recorded] == [("cached", "GET user:1")]


# -- settings ------------------------------------------------------------------------------------


def test_client_cache_settings_are_checked() -> None:
    def codes(entry: dict[str, Any]) -> list[tuple[str, str]]:
        return [(p.id, p.message) for p in validate({"c": entry})]

    url = "redis://127.0.0.1:1/0"
    assert codes({"URL": url, "CLIENT_CACHE": True}) == []
    assert codes({"URL": url, "CLIENT_CACHE": {"MAX_ENTRIES": 5, "MAX_BYTES": 2**20}}) == []
    [(code, message)] = codes({"URL": url, "CLIENT_CACHE": "yes"})
    assert code == "E003" and "CLIENT_CACHE='yes'" in message
    [(code, message)] = codes({"URL": url, "CLIENT_CACHE": {"MAX_ENTRY": 5}})
    assert "did you mean 'MAX_ENTRIES'" in message
    [(code, message)] = codes({"URL": url, "CLIENT_CACHE": {"MAX_BYTES": 100}})
    assert "CLIENT_CACHE['MAX_BYTES']=100" in message
    [(code, message)] = codes({"URL": url, "CLUSTER": True, "CLIENT_CACHE": True})
    assert code == "E009" and "CLIENT_CACHE with CLUSTER" in message
    spec = parse({"c": {"URL": url, "CLIENT_CACHE": {"MAX_ENTRIES": 7}}})["c"]
    assert spec.client_cache == CacheSettings(max_entries=7)
    assert parse({"c": {"URL": url}})["c"].client_cache is None


def test_reads_wait_for_nothing_when_the_server_is_down(
    make_registry: Callable[..., ConnectionRegistry],
) -> None:
    """A cache that cannot listen serves nothing and keeps nothing; reads fail as they would
    without it, naming the connection, and the health report says why."""
    registry = make_registry("redis://127.0.0.1:1/0", SOCKET_CONNECT_TIMEOUT=0.2, RETRY=0)
    client = registry.get("cached")
    for _ in range(2):
        with pytest.raises(redis.ConnectionError, match="cached"):
            client.get("k")
    cache = registry.client_cache("cached")
    assert cache is not None and not cache.listening and cache.entries == 0
    entry = registry.health(names=["cached"])["connections"][0]
    assert entry["status"] == "down"


@pytest.mark.parametrize("transport", ["unix", "tls"])
def test_unix_sockets_and_tls_connections_cache_too(
    redis_server: RedisServer,
    tls_server: RedisServer,
    readers: Callable[..., Reader],
    transport: str,
) -> None:
    server = redis_server if transport == "unix" else tls_server
    url = server.unix_url if transport == "unix" else server.url
    assert url is not None
    options = {"ssl_ca_certs": server.ca_cert} if transport == "tls" else {}
    reader = readers(url, "sync", OPTIONS=options) if options else readers(url, "sync")
    with server.client() as plain:
        plain.set("k", "old")
        assert local_until_valid(reader, "get", "k") == b"old"
        plain.set("k", "new")
        wait_until(lambda: reader("get", "k") == b"new", DEADLINE, lambda: "invalidated")


def test_threads_share_one_cache_and_one_listener(
    redis_server: RedisServer, readers: Callable[..., Reader]
) -> None:
    reader = readers(redis_server.url, "sync")
    with redis_server.client() as plain:
        plain.set("k", "v")
    local_until_valid(reader, "get", "k")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(2000):
                assert reader.client.get("k") == b"v"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert not errors
    name = reader.client.connection_pool.connection_kwargs["client_name"]
    with redis_server.client() as plain:
        names = [c["name"] for c in plain.client_list()]
    assert names.count(f"{name}.invalidations") == 1
