"""Production proof, faults: a server killed and restarted, a backend down during a request's
flush, slow and interrupted batches, a Sentinel failover, a Redis Cluster slot migration and
primary failover. Every test talks to real redis-server processes; the destructive ones build
their own private deployments so the session fixtures other tests share are never disturbed.

The figures (recovery time, failover times) are printed and, when REDIS_CONN_FIGURES names a
file, appended to it as JSON lines; docs/production.md quotes them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import redis.asyncio
from django.http import HttpRequest, HttpResponse
from django.test import Client as DjangoClient
from django.urls import path
from redis.exceptions import ConnectionError as RedisConnectionError

from redis_conn import ConnectionRegistry, PipelineError
from redis_conn.async_pipeline import async_pipeline
from redis_conn.pipeline import pipeline
from redis_conn.registry import connections
from redis_conn.request_scope import RequestPipeline

try:
    from servers import ClusterDeployment, RedisServer, SentinelDeployment
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import ClusterDeployment, RedisServer, SentinelDeployment

# Bounds for every loop that waits on a fault: attempts and seconds.
MAX_ATTEMPTS = 2000
FAILOVER_DEADLINE = 30.0


def record_figure(name: str, value: Any, record_property: Callable[[str, Any], None]) -> None:
    """Show a measured figure, keep it in the junit report, and in REDIS_CONN_FIGURES if set."""
    print(f"\nFIGURE {name} = {value}")
    record_property(name, value)
    target = os.environ.get("REDIS_CONN_FIGURES")
    if target:
        with open(target, "a") as out:
            out.write(json.dumps({"figure": name, "value": value}) + "\n")


def warm(client: Any, count: int) -> None:
    """Leave ``count`` connected, idle connections in ``client``'s pool."""
    pool = client.connection_pool
    held = [pool.get_connection() for _ in range(count)]
    for conn in held:
        conn.connect()
    for conn in held:
        pool.release(conn)


@dataclass
class Outcome:
    started: float
    ended: float
    error: BaseException | None


# -- a server killed and restarted on the same port ------------------------------------------


@pytest.mark.slow
def test_server_killed_and_restarted_on_the_same_port_recovers_in_place(
    killable_server: RedisServer, record_property: Callable[[str, Any], None]
) -> None:
    registry = ConnectionRegistry(
        {
            "users": {
                "URL": killable_server.url,
                "MAX_CONNECTIONS": 8,
                "SOCKET_TIMEOUT": 1.0,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "RETRY": 2,
            }
        }
    )
    client = registry.get("users")
    outcomes: list[Outcome] = []
    stop = threading.Event()

    def requests() -> None:
        for _ in range(MAX_ATTEMPTS):
            if stop.is_set():
                return
            started = time.monotonic()
            try:
                client.incr("served")
                error = None
            except Exception as exc:
                error = exc
            outcomes.append(Outcome(started, time.monotonic(), error))
            time.sleep(0.005)

    try:
        warm(client, 4)
        workers = [threading.Thread(target=requests) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(0.3)
        killed_at = time.monotonic()
        killable_server.kill()
        time.sleep(0.5)
        killable_server.restart()
        back_at = time.monotonic()
        deadline = back_at + 10
        while time.monotonic() < deadline and not any(
            o.error is None and o.started >= back_at for o in list(outcomes)
        ):
            time.sleep(0.01)
        time.sleep(0.3)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
    assert not any(worker.is_alive() for worker in workers)

    failed = [o for o in outcomes if o.error is not None]
    after_back = [o for o in outcomes if o.started >= back_at]
    assert failed, "the kill went unnoticed: no request failed while the server was down"
    assert all(isinstance(o.error, RedisConnectionError) for o in failed), {
        type(o.error).__name__ for o in failed
    }
    assert all(str(o.error).startswith("Redis connection 'users': ") for o in failed)
    # Requests fail only while the server is down.
    assert all(o.ended >= killed_at and o.started < back_at for o in failed)
    # Back on its port: every request succeeds at once, stale pooled sockets included (how
    # soon is a figure below, not a pass/fail bound: a loaded machine stretches any clock).
    assert after_back and all(o.error is None for o in after_back)
    first_ok = min(o.ended for o in outcomes if o.error is None and o.ended >= back_at)
    usage = client.connection_pool.usage()
    assert usage.in_use == 0 and usage.created <= 8
    # The data died with the process (no persistence); the counter restarted from zero.
    served_after = sum(1 for o in after_back if o.error is None)
    assert int(killable_server.client().get("served") or 0) >= served_after
    registry.close_all()
    record_figure("restart_recovery_ms", round((first_ok - back_at) * 1000, 1), record_property)
    record_figure(
        "restart_outage_seen_by_clients_ms",
        round((first_ok - killed_at) * 1000, 1),
        record_property,
    )
    record_figure("restart_failed_requests", len(failed), record_property)


def test_stale_pooled_sockets_are_retried_not_surfaced(killable_server: RedisServer) -> None:
    registry = ConnectionRegistry({"users": {"URL": killable_server.url, "MAX_CONNECTIONS": 4}})
    client = registry.get("users")
    try:
        warm(client, 4)
        assert client.connection_pool.usage().created == 4
        killable_server.kill()
        killable_server.restart()
        # Four concurrent requests: each takes one of the four dead sockets.
        errors: list[BaseException] = []
        barrier = threading.Barrier(4, timeout=10)

        def request(i: int) -> None:
            barrier.wait()
            try:
                assert client.set(f"k{i}", i) is True
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=request, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert errors == []
        assert client.mget([f"k{i}" for i in range(4)]) == [b"0", b"1", b"2", b"3"]
        assert client.connection_pool.usage().created == 4
    finally:
        registry.close_all()


def test_errors_from_a_down_server_name_the_connection(killable_server: RedisServer) -> None:
    """The error a view sees must say which of the configured connections is down."""
    registry = ConnectionRegistry({"users": {"URL": killable_server.url, "RETRY": 0}})
    client = registry.get("users")
    address = f"127.0.0.1:{killable_server.port}"
    try:
        assert client.ping() is True
        killable_server.kill()
        with pytest.raises(RedisConnectionError) as info:
            client.get("k")
        assert str(info.value).startswith("Redis connection 'users': "), str(info.value)
        assert address in str(info.value)

        async def async_get() -> str:
            try:
                await registry.get_async("users").get("k")
            except RedisConnectionError as exc:
                return str(exc)
            finally:
                await registry.aclose_async()
            raise AssertionError("the async client reached a dead server")

        message = asyncio.run(async_get())
        assert message.startswith("Redis connection 'users': "), message
        assert address in message
    finally:
        registry.close_all()


def _failed_logins(server: RedisServer) -> int:
    with server.probe_client() as probe:
        return sum(int(entry["count"]) for entry in probe.acl_log())


def test_a_wrong_password_fails_at_once_and_is_not_retried(redis_server_b: RedisServer) -> None:
    """AuthenticationError is a redis ConnectionError, so RETRY's reconnect-and-resend would
    try a wrong password again and again with backoff (RETRY=10: 5.5 s per command, and ten
    failed AUTHs logged by the server for each). A wrong password never becomes right.

    "At once" is read from the server, not a clock: the retry loop sleeps its backoff only
    between attempts, and each attempt is one more failed AUTH in the ACL LOG, so exactly
    one there means no attempt and no backoff after the first."""
    registry = ConnectionRegistry(
        {"users": {"URL": f"redis://app:wrong@127.0.0.1:{redis_server_b.port}/0", "RETRY": 10}}
    )
    before = _failed_logins(redis_server_b)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError) as info:
            registry.get("users").ping()
    finally:
        registry.close_all()
    assert str(info.value).startswith("Redis connection 'users': "), str(info.value)
    assert _failed_logins(redis_server_b) - before == 1


def test_a_wrong_password_is_not_retried_by_async_clients(redis_server_b: RedisServer) -> None:
    registry = ConnectionRegistry(
        {"users": {"URL": f"redis://app:wrong@127.0.0.1:{redis_server_b.port}/0", "RETRY": 10}}
    )
    before = _failed_logins(redis_server_b)

    async def ping() -> str:
        try:
            await registry.get_async("users").ping()
        except redis.exceptions.AuthenticationError as exc:
            return str(exc)
        finally:
            await registry.aclose_async()
        raise AssertionError("a wrong password was accepted")

    message = asyncio.run(ping())
    assert message.startswith("Redis connection 'users': "), message
    assert _failed_logins(redis_server_b) - before == 1


# -- a request pipeline whose flush fails half way -------------------------------------------


@pytest.fixture
def half_down(redis_server: RedisServer, killable_server: RedisServer) -> Iterator[RedisServer]:
    """``default`` on a live server, ``messages`` on a killed one."""
    settings = {
        "default": {"URL": redis_server.url},
        "messages": {"URL": killable_server.url, "RETRY": 0, "SOCKET_CONNECT_TIMEOUT": 0.5},
    }
    connections.configure(settings)
    killable_server.kill()
    yield redis_server
    connections.configure(None)


def queue_half_down_batch(p: Any) -> None:
    for _ in range(3):
        p.incr("hits")
    p["messages"].lpush("inbox", "secret message body")
    p["messages"].lpush("inbox", "another")
    p["messages"].incr("unread")


def test_flush_with_one_backend_down_lands_the_other_and_raises(
    half_down: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    scope = RequestPipeline(description="POST /send/")
    queue_half_down_batch(scope.pipeline)
    with (
        caplog.at_level(logging.ERROR, logger="redis_conn.request"),
        pytest.raises(PipelineError) as info,
    ):
        scope.flush()
    assert list(info.value.errors) == ["messages"]
    assert isinstance(info.value.errors["messages"], RedisConnectionError)
    assert info.value.failed_commands == [
        "'messages': LPUSH inbox",
        "'messages': LPUSH inbox",
        "'messages': INCRBY unread",
    ]
    # The live backend's batch landed, exactly once.
    assert half_down.client().get("hits") == b"3"
    [record] = caplog.records
    assert record.getMessage() == (
        "Redis request pipeline of POST /send/ failed to flush (the error propagates); "
        "failed commands per connection: 'messages': 3 (LPUSH inbox x2, INCRBY unread)."
    )
    assert "secret message body" not in caplog.text


def test_flush_with_one_backend_down_on_error_log(
    half_down: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    scope = RequestPipeline()
    queue_half_down_batch(scope.pipeline)
    with caplog.at_level(logging.ERROR, logger="redis_conn.request"):
        scope.flush(on_error="log")
    assert half_down.client().get("hits") == b"3"
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.redis_failed_commands == {  # type: ignore[attr-defined]
        "'messages'": {"LPUSH inbox": 2, "INCRBY unread": 1}
    }


def half_down_view(request: HttpRequest) -> HttpResponse:
    queue_half_down_batch(request.redis)  # type: ignore[attr-defined]
    return HttpResponse("sent")


urlpatterns = [path("half-down/", half_down_view)]


@pytest.mark.parametrize("on_error", ["raise", "log"])
def test_django_flush_with_one_backend_down_follows_the_setting(
    settings: Any,
    redis_server: RedisServer,
    killable_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    on_error: str,
) -> None:
    settings.ROOT_URLCONF = __name__
    settings.REDIS_CONN_ON_FLUSH_ERROR = on_error
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": redis_server.url},
        "messages": {"URL": killable_server.url, "RETRY": 0, "SOCKET_CONNECT_TIMEOUT": 0.5},
    }
    killable_server.kill()
    with caplog.at_level(logging.ERROR):
        response = DjangoClient(raise_request_exception=False).get("/half-down/")
    assert response.status_code == (500 if on_error == "raise" else 200)
    assert redis_server.client().get("hits") == b"3"
    flush_logs = [r for r in caplog.records if r.name == "redis_conn.request"]
    assert len(flush_logs) == 1
    assert flush_logs[0].redis_failed_commands == {  # type: ignore[attr-defined]
        "'messages'": {"LPUSH inbox": 2, "INCRBY unread": 1}
    }
    if on_error == "raise":  # Django logs the 500 as well, with the PipelineError
        [request_log] = [r for r in caplog.records if r.name == "django.request"]
        assert request_log.exc_info is not None
        assert isinstance(request_log.exc_info[1], PipelineError)


# -- slow and interrupted batches never poison a pool ----------------------------------------


def own_answers_check(p: Any, marker: str, *, decoded: bool) -> Callable[[], None]:
    """Queue commands whose answers are unique to ``marker``; the returned callable checks them
    after the batch ran."""
    echo = p.echo(marker)
    setter = p.set(f"own:{marker}", marker)
    getter = p.get(f"own:{marker}")
    expected = marker if decoded else marker.encode()

    def check() -> None:
        assert echo.result == expected
        assert setter.result is True
        assert getter.result == expected

    return check


@pytest.mark.slow
def test_timeouts_and_exceptions_mid_batch_under_concurrency_never_cross_answers(
    redis_server: RedisServer,
) -> None:
    """Six threads share a pool of two. A third of their batches hit SOCKET_TIMEOUT mid-batch
    (a BLPOP longer than the timeout between other commands), a third fail to decode a reply
    mid-batch; every batch that follows on the same pool must get its own answers."""
    raw = redis_server.client()
    raw.set("undecodable", b"\xff\xfe")
    connections.configure(
        {
            "default": {
                "URL": redis_server.url,
                "MAX_CONNECTIONS": 2,
                "SOCKET_TIMEOUT": 0.1,
                "RETRY": 0,
            },
            "text": {
                "URL": redis_server.url,
                "MAX_CONNECTIONS": 2,
                "OPTIONS": {"decode_responses": True},
            },
        }
    )
    problems: list[str] = []
    counts = {"timeout": 0, "decode": 0, "clean": 0}
    lock = threading.Lock()

    def worker(tid: int) -> None:
        rng = random.Random(tid)
        for i in range(24):
            kind = rng.choice(["timeout", "decode", "clean"])
            marker = f"t{tid}-{i}"
            try:
                if kind == "timeout":
                    with pipeline() as p:
                        p.incr(f"n:{marker}")
                        p.blpop([f"empty:{marker}"], timeout=1)
                        p.echo("late")
                        with pytest.raises(PipelineError):
                            p.execute()
                elif kind == "decode":
                    with pipeline(name="text") as p:
                        p.get("undecodable")
                        p.echo("late")
                        with pytest.raises(PipelineError):
                            p.execute()
                # Then on both pools: a batch, a plain redis-py pipeline and single commands.
                for name in ("default", "text"):
                    with pipeline(name=name) as p:
                        check = own_answers_check(p, marker, decoded=name == "text")
                        p.execute()
                    check()
                    client = connections.get(name)
                    plain = client.pipeline(transaction=False)
                    plain.echo(marker).get(f"own:{marker}")
                    expected: Any = [marker.encode(), marker.encode()]
                    if name == "text":
                        expected = [marker, marker]
                    assert plain.execute() == expected
                    assert client.echo(marker) in (marker, marker.encode())
            except AssertionError as exc:
                problems.append(f"{marker} ({kind}): {exc!r}")
            with lock:
                counts[kind] += 1

    threads = [threading.Thread(target=worker, args=(tid,)) for tid in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert problems == []
        assert min(counts.values()) > 0, counts
        for name in ("default", "text"):
            usage = connections.get(name).connection_pool.usage()
            assert usage.in_use == 0 and usage.created <= 2
    finally:
        connections.configure(None)


class _Interrupt:
    """Raise KeyboardInterrupt in the main thread after ``delay`` seconds (SIGALRM), as a
    Ctrl-C (or a worker's graceful-timeout signal) arriving while replies are being read."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __enter__(self) -> _Interrupt:
        def interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        self._old = signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, self.delay)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._old)


def test_keyboard_interrupt_between_replies_never_poisons_the_pool(
    redis_server: RedisServer,
) -> None:
    """A signal arrives while a batch waits for its second reply: the redis_conn pipeline, a
    plain redis-py pipeline and a single blocking command. The pool has one connection, so the
    next command necessarily reuses it or a fresh one; it must get its own answer."""
    connections.configure({"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 1}})
    client = connections.get("default")
    try:
        for round_ in range(3):
            with pipeline() as p:
                p.set("a", "A")
                p.blpop(["empty"], timeout=0.5)
                late = p.echo("late")
                with _Interrupt(0.05), pytest.raises(KeyboardInterrupt):
                    p.execute()
            assert late.done()
            assert client.echo(f"fresh-{round_}") == f"fresh-{round_}".encode()

            plain = client.pipeline(transaction=False)
            plain.set("a", "A").blpop(["empty"], timeout=0.5).echo("late")
            with _Interrupt(0.05), pytest.raises(KeyboardInterrupt):
                plain.execute()
            assert client.get("a") == b"A"

            with _Interrupt(0.05), pytest.raises(KeyboardInterrupt):
                client.blpop(["empty"], timeout=0.5)
            assert client.echo("after-blpop") == b"after-blpop"
        time.sleep(0.6)  # every BLPOP's late nil would have arrived by now on a pooled socket
        assert client.echo("last") == b"last"
        assert client.connection_pool.usage().in_use == 0
    finally:
        connections.configure(None)


def test_cancelled_async_batches_under_concurrency_never_cross_answers(
    redis_server: RedisServer,
) -> None:
    """200 tasks on a pool of 4; half are cancelled mid-batch (asyncio timeout while a BLPOP
    is pending). Every batch after them gets its own answers."""
    registry_settings = {"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 4}}
    connections.configure(registry_settings)

    async def one(i: int) -> None:
        if i % 2:

            async def slow_batch() -> None:
                async with async_pipeline() as p:
                    p.incr(f"n{i}")
                    p.blpop([f"empty{i}"], timeout=0.3)
                    p.echo("late")
                    await p.execute()

            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(slow_batch(), 0.02)
        async with async_pipeline() as p:
            echo, setter, getter = p.echo(f"m{i}"), p.set(f"own{i}", i), p.get(f"own{i}")
            await p.execute()
        assert (echo.result, setter.result, getter.result) == (f"m{i}".encode(), True, b"%d" % i)
        client = connections.get_async("default")
        assert await client.echo(f"x{i}") == f"x{i}".encode()

    async def main() -> None:
        try:
            await asyncio.gather(*(one(i) for i in range(200)))
            await asyncio.sleep(0.4)
            client = connections.get_async("default")
            assert await client.echo("last") == b"last"
            assert client.connection_pool.usage().in_use == 0
        finally:
            await connections.aclose_async()

    try:
        asyncio.run(main())
    finally:
        connections.configure(None)


# -- Sentinel failover ------------------------------------------------------------------------


@pytest.mark.slow
def test_sentinel_failover_clients_follow_without_a_restart(
    private_sentinel: SentinelDeployment, record_property: Callable[[str, Any], None]
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
            }
        }
    )
    client = registry.get("ha")
    assert client.set("before", "1") is True
    # Replicated before the crash. WAIT's own timeout stays under SOCKET_TIMEOUT (0.5 s): the
    # replica may still be syncing when the test starts.
    assert any(client.wait(1, 300) == 1 for _ in range(30))

    async def follow() -> dict[str, Any]:
        aclient = registry.get_async("ha")
        assert await aclient.set("async-before", "1") is True
        for _ in range(30):
            if await aclient.wait(1, 300) == 1:
                break
        killed_at = time.monotonic()
        deployment.primary.kill()
        sync_task = asyncio.create_task(asyncio.to_thread(write_until_ok, client, "sync"))
        async_errors: list[str] = []
        async_ok_at = None
        for attempt in range(MAX_ATTEMPTS):
            if time.monotonic() - killed_at > FAILOVER_DEADLINE:
                break
            try:
                await aclient.set("async-after", attempt)
                async_ok_at = time.monotonic()
                break
            except RedisConnectionError as exc:
                async_errors.append(type(exc).__name__)
                await asyncio.sleep(0.05)
        sync_ok_at, sync_errors = await sync_task
        async with async_pipeline(name="ha") as p:
            piped = p.incr("piped")
            await p.execute()
        assert piped.result == 1
        await registry.aclose_async()
        return {
            "killed_at": killed_at,
            "sync": (sync_ok_at, sync_errors),
            "async": (async_ok_at, async_errors),
        }

    try:
        result = asyncio.run(follow())
    except BaseException:
        registry.configure(None)
        raise
    killed_at = result["killed_at"]
    sync_ok_at, sync_errors = result["sync"]
    async_ok_at, async_errors = result["async"]
    assert sync_ok_at is not None and async_ok_at is not None, "no failover within 30 s"
    # Errors while there was no primary are connection errors (MasterNotFoundError is one); a
    # write whose connection died under it says it may or may not have run (never re-sent).
    expected = {"ConnectionError", "MasterNotFoundError", "TimeoutError"}
    expected |= {"ConnectionLostAfterWrite", "TimeoutAfterWrite"}
    assert set(sync_errors) <= expected
    assert set(async_errors) <= expected
    # The replica is the primary now, and the same client objects write to it.
    assert deployment.primary_address() == ("127.0.0.1", deployment.replica.port)
    new_primary = deployment.replica.client()
    assert new_primary.execute_command("ROLE")[0] == b"master"
    assert new_primary.mget(["before", "async-before", "sync-after"]) == [b"1", b"1", b"ok"]
    assert client.get("before") == b"1"
    with pipeline(name="ha") as p:
        piped = p.incr("piped")
        p.execute()
    assert piped.result == 2
    registry.configure(None)
    record_figure(
        "sentinel_failover_sync_ms", round((sync_ok_at - killed_at) * 1000), record_property
    )
    record_figure(
        "sentinel_failover_async_ms", round((async_ok_at - killed_at) * 1000), record_property
    )


def write_until_ok(client: Any, label: str) -> tuple[float | None, list[str]]:
    errors: list[str] = []
    started = time.monotonic()
    for _ in range(MAX_ATTEMPTS):
        if time.monotonic() - started > FAILOVER_DEADLINE:
            break
        try:
            client.set(f"{label}-after", "ok")
            return time.monotonic(), errors
        except RedisConnectionError as exc:
            errors.append(type(exc).__name__)
            time.sleep(0.05)
    return None, errors


# -- Redis Cluster: slot migration and primary failover ---------------------------------------


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterDeployment]:
    """A cluster of this module only: its slots are moved and a primary is killed."""
    cluster = ClusterDeployment(tmp_path_factory.mktemp("private_cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def node_id(server: RedisServer) -> str:
    with server.probe_client() as c:
        return str(c.execute_command("CLUSTER MYID"))


@pytest.mark.slow
def test_cluster_slot_migration_commands_and_pipelines_still_land(
    private_cluster: ClusterDeployment,
) -> None:
    cluster = private_cluster
    cluster.wait_healthy()
    connections.configure({"cache": {"URL": cluster.url, "CLUSTER": True, "RETRY": 1}})
    client = connections.get("cache")
    try:
        client.set("moved{m}", "v0")
        client.set("stays{m}", "s0")
        slot = client.keyslot("moved{m}")
        source = cluster.node(client.nodes_manager.get_node_from_slot(slot).port)
        target = cluster.node(next(p for p in cluster.primaries if p != source.port))
        source_id, target_id = node_id(source), node_id(target)
        with target.probe_client() as t, source.probe_client() as s:
            t.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
            s.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
            # Half migrated: one key on each side (ASK redirections for the moved one).
            s.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", "moved{m}")
            assert client.get("moved{m}") == b"v0"
            assert client.get("stays{m}") == b"s0"
            with pipeline(name="cache") as p:
                moved, stays, counter = p.get("moved{m}"), p.get("stays{m}"), p.incr("c{m}")
                p.execute()
            assert (moved.result, stays.result) == (b"v0", b"s0")
            plain = client.pipeline()
            plain.set("moved{m}", "v1").get("stays{m}")
            assert plain.execute() == [True, b"s0"]
            s.execute_command(
                "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", "stays{m}", "c{m}"
            )
        for server in cluster.primary_nodes:
            with server.probe_client() as c:
                c.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        # Completed: the client's slot map is stale (MOVED), commands and pipelines land.
        assert client.get("moved{m}") == b"v1"
        with pipeline(name="cache") as p:
            moved, counter = p.get("moved{m}"), p.incr("c{m}")
            p.execute()
        assert (moved.result, counter.result) == (b"v1", 2)
        plain = client.pipeline()
        plain.incr("c{m}").get("stays{m}")
        assert plain.execute() == [3, b"s0"]
        assert client.nodes_manager.get_node_from_slot(slot).port == target.port

        async def async_side() -> None:
            aclient = connections.get_async("cache")
            try:
                assert await aclient.incr("c{m}") == 4
                async with async_pipeline(name="cache") as ap:
                    value = ap.get("moved{m}")
                    await ap.execute()
                assert value.result == b"v1"
            finally:
                await connections.aclose_async()

        asyncio.run(async_side())
        with target.probe_client() as t:
            assert t.get("c{m}") == "4"  # really on the new owner
    finally:
        connections.configure(None)


@pytest.mark.slow
def test_cluster_primary_failover_commands_and_pipelines_still_land(
    private_cluster: ClusterDeployment, record_property: Callable[[str, Any], None]
) -> None:
    cluster = private_cluster
    cluster.wait_healthy()
    connections.configure(
        {
            "cache": {
                "URL": cluster.url,
                "CLUSTER": True,
                "SOCKET_TIMEOUT": 1.0,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "RETRY": 1,
            }
        }
    )
    client = connections.get("cache")
    try:
        client.set("fo{f}", "before")
        client.wait(1, 2000)  # on the replica too: it survives the failover
        victim = cluster.node(client.get_node_from_key("fo{f}").port)
        killed_at = time.monotonic()
        victim.kill()
        errors: list[str] = []
        landed_at = None
        landed = 0
        for attempt in range(MAX_ATTEMPTS):
            if time.monotonic() - killed_at > FAILOVER_DEADLINE:
                break
            try:
                client.incr("after{f}")
                landed += 1
                with pipeline(name="cache") as p:
                    p.incr("after{f}")
                    p.execute()
                landed += 1
                landed_at = time.monotonic()
                break
            except (redis.exceptions.RedisError, PipelineError) as exc:
                errors.append(type(exc).__name__)
                time.sleep(0.05 if attempt < 200 else 0.2)
        assert landed_at is not None, f"nothing landed within 30 s: {set(errors)}"
        assert client.get("fo{f}") == b"before"
        new_owner = client.get_node_from_key("fo{f}")
        assert new_owner.port != victim.port
        assert client.get("after{f}") == str(landed).encode()  # each INCR landed once
        record_figure("cluster_failover_ms", round((landed_at - killed_at) * 1000), record_property)
    finally:
        connections.configure(None)
        victim.ensure_running()  # rejoins as a replica; the fixture ends with the module
