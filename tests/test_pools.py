"""Pools that fail well: PoolExhausted naming the connection, honest counters, no poisoning."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_conn import ConnectionRegistry, PoolExhausted, ReplyNotUnderstood

try:
    from servers import finish_within, wait_until
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import finish_within, wait_until


@pytest.fixture
def registry() -> Iterator[ConnectionRegistry]:
    reg = ConnectionRegistry({"default": {"FAKE": True}})
    yield reg
    reg.close_all()


def hold_connections(client: Any, count: int) -> list[Any]:
    pool = client.connection_pool
    return [pool.get_connection() for _ in range(count)]


def test_non_blocking_pool_fails_at_once_naming_connection_and_limit(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {"users": {"URL": redis_server.url, "MAX_CONNECTIONS": 2, "BLOCKING": False}}
    )
    r = registry.get("users")
    pool = r.connection_pool
    # "At once" without a clock: a neighbour holds both connections and gives them back as
    # soon as anyone queues for one. A pool that waited would then lend one, and not fail.
    holding, done = threading.Event(), threading.Event()
    saw_a_waiter = [False]

    def neighbour() -> None:
        held = hold_connections(r, 2)
        holding.set()
        while not done.is_set() and not pool.usage().waiting:
            time.sleep(0.001)  # bounded: until the command below has returned
        saw_a_waiter[0] = not done.is_set()
        for conn in held:
            pool.release(conn)

    thread = threading.Thread(target=neighbour)
    thread.start()
    error: BaseException | None = None
    try:
        assert holding.wait(30)
        r.get("k")
    except PoolExhausted as exc:
        error = exc
    finally:
        done.set()
        thread.join(timeout=30)
    assert saw_a_waiter == [False], "BLOCKING=False made the command wait for a connection"
    assert isinstance(error, redis.exceptions.ConnectionError)
    assert str(error) == (
        "Redis connection 'users': pool exhausted, all connections are in use and the pool "
        "does not block (BLOCKING=False); MAX_CONNECTIONS=2."
    )
    assert r.get("k") is None


def test_blocking_pool_waits_pool_timeout_then_fails(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {"users": {"URL": redis_server.url, "MAX_CONNECTIONS": 1, "POOL_TIMEOUT": 0.3}}
    )
    r = registry.get("users")
    (held,) = hold_connections(r, 1)
    # It waits POOL_TIMEOUT out, never less (the clock only bounds from below, which no
    # load can break); a wait that never ends fails after far longer instead of hanging.
    refusal = finish_within(r.ping, 30, lambda: "a ping waiting on a full pool (POOL_TIMEOUT=0.3)")
    assert isinstance(refusal.error, PoolExhausted), refusal.error
    assert refusal.seconds >= 0.3
    assert str(refusal.error) == (
        "Redis connection 'users': pool exhausted, no connection was released within "
        "POOL_TIMEOUT=0.3s; MAX_CONNECTIONS=1."
    )
    r.connection_pool.release(held)
    assert r.ping() is True


def test_blocking_pool_hands_over_a_released_connection(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {"users": {"URL": redis_server.url, "MAX_CONNECTIONS": 1, "POOL_TIMEOUT": 5}}
    )
    r = registry.get("users")
    pool = r.connection_pool
    holding = threading.Event()

    def neighbour() -> None:
        (held,) = hold_connections(r, 1)
        holding.set()
        # Given back once the ping below waits for it, however long that takes to happen.
        wait_until(lambda: pool.usage().waiting == 1, 30, lambda: f"a waiter; {pool.usage()}")
        pool.release(held)

    thread = threading.Thread(target=neighbour)
    thread.start()
    try:
        assert holding.wait(30)
        assert r.ping() is True
    finally:
        thread.join(timeout=30)
    assert pool.usage().created == 1


def test_counters_under_threads_never_exceed_the_limit(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 4}})
    r = registry.get()
    errors: list[BaseException] = []
    peak = [0]
    peak_lock = threading.Lock()  # max() then store from 16 threads would lose updates

    def hammer() -> None:
        try:
            for i in range(50):
                r.incr("hits")
                created = r.connection_pool.usage().created
                with peak_lock:
                    peak[0] = max(peak[0], created)
                if i % 10 == 0:
                    r.blpop(["never"], timeout=0.01)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    usage = r.connection_pool.usage()
    assert (usage.in_use, usage.idle) == (0, usage.created)
    assert 1 <= usage.created <= 4 and peak[0] <= 4
    assert int(r.get("hits")) == 16 * 50  # type: ignore[arg-type]


def test_cluster_node_pool_exhaustion_names_the_connection(
    registry: ConnectionRegistry, redis_cluster: Any
) -> None:
    registry.configure(
        {
            "cache": {
                "URL": redis_cluster.url,
                "CLUSTER": True,
                "MAX_CONNECTIONS": 1,
                "BLOCKING": False,
            }
        }
    )
    r = registry.get("cache")
    r.set("a", 1)
    node = r.get_node_from_key("a")
    pool = node.redis_connection.connection_pool
    (held,) = hold_connections(node.redis_connection, 1)
    with pytest.raises(PoolExhausted, match="Redis connection 'cache': pool exhausted"):
        r.get("a")
    pool.release(held)
    assert r.get("a") == b"1"


def test_async_pool_exhaustion(registry: ConnectionRegistry, redis_server: Any) -> None:
    import asyncio

    registry.configure(
        {
            # The asyncio pool itself (MULTIPLEX, the default, borrows from it only for
            # blocking commands, pub/sub and transactions).
            "nb": {
                "URL": redis_server.url,
                "MAX_CONNECTIONS": 1,
                "BLOCKING": False,
                "MULTIPLEX": False,
            },
            "bl": {
                "URL": redis_server.url,
                "MAX_CONNECTIONS": 1,
                "POOL_TIMEOUT": 0.2,
                "MULTIPLEX": False,
            },
        }
    )

    async def scenario() -> None:
        for name, message in [
            ("nb", "does not block"),
            ("bl", "no connection was released within POOL_TIMEOUT=0.2s"),
        ]:
            r = registry.get_async(name)
            held = await r.connection_pool.get_connection()
            with pytest.raises(PoolExhausted, match=message) as info:
                await r.ping()
            assert info.value.connection_name == name
            await r.connection_pool.release(held)
            assert await r.ping() is True
            assert r.connection_pool.usage().in_use == 0
        await registry.aclose_async()

    asyncio.run(scenario())


def interrupt_second_reply(connection: Any) -> None:
    """Fault injection on a real socket: the 2nd reply read raises KeyboardInterrupt."""
    original = connection.read_response
    calls = [0]

    def read_response(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    connection.read_response = read_response


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_pipeline_interrupted_between_replies_never_poisons_the_pool(
    registry: ConnectionRegistry, redis_server: Any, protocol: int
) -> None:
    registry.configure(
        {
            "default": {
                "URL": redis_server.url,
                "MAX_CONNECTIONS": 1,
                "OPTIONS": {"protocol": protocol},
            }
        }
    )
    r = registry.get()
    r.set("x", "A")
    r.set("y", "B")
    pool = r.connection_pool
    (conn,) = hold_connections(r, 1)
    pool.release(conn)
    interrupt_second_reply(conn)
    pipe = r.pipeline(transaction=False)
    pipe.get("x").get("y").get("x")
    with pytest.raises(KeyboardInterrupt):
        pipe.execute()
    del conn.read_response
    # The same (only) connection is handed out again: it must not answer with 'B'.
    assert r.get("x") == b"A"
    assert r.get("y") == b"B"
    assert pool.usage().in_use == 0


def test_an_exception_in_a_response_callback_never_poisons_the_pool(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 1}})
    r = registry.get()
    r.set("x", "A")
    r.rpush("l", "1", "2")

    class Boom(Exception):
        pass

    def explode(response: Any, **options: Any) -> Any:
        raise Boom

    pipe = r.pipeline(transaction=False)
    pipe.get("x")
    pipe.lrange("l", 0, -1)
    pipe.get("x")
    pipe.response_callbacks = {**pipe.response_callbacks, "LRANGE": explode}
    with pytest.raises(ReplyNotUnderstood) as info:  # CONTRACT 13: an unknown outcome
        pipe.execute()
    assert isinstance(info.value.__cause__, Boom)
    assert r.get("x") == b"A"
    assert r.lrange("l", 0, -1) == [b"1", b"2"]


def test_async_interrupted_pipeline_never_poisons_the_pool(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    import asyncio

    registry.configure(
        {"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 1, "MULTIPLEX": False}}
    )

    async def scenario() -> None:
        r = registry.get_async()
        await r.set("x", "A")
        await r.set("y", "B")
        conn = await r.connection_pool.get_connection()
        await r.connection_pool.release(conn)
        original = conn.read_response
        calls = [0]

        async def read_response(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == 2:
                raise asyncio.CancelledError
            return await original(*args, **kwargs)

        conn.read_response = read_response
        pipe = r.pipeline(transaction=False)
        pipe.get("x").get("y").get("x")
        with pytest.raises(asyncio.CancelledError):
            await pipe.execute()
        del conn.read_response
        assert await r.get("x") == b"A"
        await registry.aclose_async()

    asyncio.run(scenario())


def test_socket_timeout_mid_batch_leaves_no_stale_reply(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {
            "default": {
                "URL": redis_server.url,
                "MAX_CONNECTIONS": 1,
                "SOCKET_TIMEOUT": 0.2,
                "RETRY": 0,
            }
        }
    )
    r = registry.get()
    r.set("x", "A")
    pipe = r.pipeline(transaction=False)
    pipe.get("x")
    pipe.blpop(["empty"], timeout=1)  # server answers after 1s, the socket gives up at 0.2s
    pipe.get("x")
    with pytest.raises(redis.exceptions.TimeoutError):
        pipe.execute()
    time.sleep(1.1)  # the late BLPOP reply has arrived on the old socket by now
    assert r.get("x") == b"A"
    assert r.lpush("empty", "z") == 1


def test_fork_child_makes_its_own_connections(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": {"URL": redis_server.url}})
    r = registry.get()
    r.set("parent", "1")
    parent_conn = r.connection_pool.get_connection()
    parent_id = parent_conn.send_command("CLIENT", "ID") or parent_conn.read_response()
    r.connection_pool.release(parent_conn)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its client id and whether it reused the parent's client
        status = 1
        try:
            child = registry.get()
            child_id = child.client_id()
            same_object = child is r
            child.set("child", "1")
            os.write(write_fd, f"{child_id} {same_object}".encode())
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    os.close(write_fd)
    child_id_text, same_object_text = os.read(read_fd, 100).decode().split()
    os.close(read_fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert same_object_text == "False"
    assert int(child_id_text) != parent_id
    # The parent's pooled socket still answers for the parent, in step.
    assert r.get("parent") == b"1"
    assert r.get("child") == b"1"
    assert r.client_id() == parent_id


def test_pool_repr_has_redis_py_layout_and_hides_credentials(redis_server: Any) -> None:
    from redis_conn.guarded import GuardedConnection
    from redis_conn.pools import GuardedConnectionPool

    pool = GuardedConnectionPool(
        connection_name="users",
        connection_class=GuardedConnection,
        host=redis_server.host,
        port=redis_server.port,
        db=1,
        username="bob-the-user",
        password="pa/ss?#wxyz",
        ssl_password="tls-secret",
        max_connections=3,
    )
    shown = repr(pool)
    assert shown.startswith(
        "<redis_conn.pools.GuardedConnectionPool(<redis_conn.guarded.GuardedConnection("
        f"host={redis_server.host},port={redis_server.port},db=1,"
    )
    assert shown.endswith(")>)>")
    for secret in ("bob-the-user", "pa/ss", "wxyz", "tls-secret"):
        assert secret not in shown
    assert shown.count("<REDACTED>") == 3
    pool.disconnect()


def test_release_is_announced_to_a_dispatcher_passed_in(redis_server: Any) -> None:
    from redis.event import AfterConnectionReleasedEvent, EventDispatcher

    from redis_conn.guarded import GuardedConnection
    from redis_conn.pools import GuardedConnectionPool

    heard: list[Any] = []

    class Listener:
        def listen(self, event: Any) -> None:
            heard.append(event)

    dispatcher = EventDispatcher()
    dispatcher.register_listeners({AfterConnectionReleasedEvent: [Listener()]})
    kwargs = {"host": redis_server.host, "port": redis_server.port}
    quiet = GuardedConnectionPool(
        connection_name="quiet", connection_class=GuardedConnection, **kwargs
    )
    told = GuardedConnectionPool(
        connection_name="told",
        connection_class=GuardedConnection,
        event_dispatcher=dispatcher,
        **kwargs,
    )
    for pool in (quiet, told):
        connection = pool.get_connection()
        connection.send_command("PING")
        assert connection.read_response() in (b"PONG", "PONG", True)
        pool.release(connection)
        pool.disconnect()
    assert [type(event) for event in heard] == [AfterConnectionReleasedEvent]
