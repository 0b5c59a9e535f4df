"""The registry against real servers: every connection kind, laziness, sharing, threads."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster

import redis_conn
from redis_conn import ConfigurationError, ConnectionNotFound, ConnectionRegistry

try:
    from servers import wait_until
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import wait_until


@pytest.fixture
def registry() -> Iterator[ConnectionRegistry]:
    reg = ConnectionRegistry({"default": {"FAKE": True}})
    yield reg
    reg.close_all()


def client_count(server: Any) -> int:
    with server.client() as raw:
        return len(raw.client_list())


def test_standalone_tcp(registry: ConnectionRegistry, redis_server: Any) -> None:
    registry.configure({"default": {"URL": redis_server.url}})
    r = registry.get("default")
    assert isinstance(r, redis.Redis)
    r.set("k", "v")
    with redis_server.client() as raw:
        assert raw.get("k") == b"v"


def test_unix_socket(registry: ConnectionRegistry, redis_server: Any) -> None:
    registry.configure({"sock": {"URL": redis_server.unix_url}})
    assert registry.spec("sock").kind == "unix"
    r = registry.get("sock")
    r.set("via-socket", 1)
    # The server sees the client arrive over its socket file, not TCP.
    assert r.client_info()["addr"].startswith(redis_server.unix_socket)
    with redis_server.client() as raw:
        assert raw.get("via-socket") == b"1"


def test_tls_verifies_the_server_with_the_given_ca(
    registry: ConnectionRegistry, tls_server: Any
) -> None:
    registry.configure(
        {
            "tls": {"URL": tls_server.url, "OPTIONS": {"ssl_ca_certs": tls_server.ca_cert}},
            "untrusted": {"URL": tls_server.url, "RETRY": 0},
        }
    )
    assert registry.get("tls").ping() is True
    # Verification is on by default: without our CA the handshake must fail.
    with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
        registry.get("untrusted").ping()


def test_acl_user(registry: ConnectionRegistry, redis_server_b: Any) -> None:
    registry.configure(
        {
            "acl": {"URL": redis_server_b.acl_url},
            "wrong": {"URL": redis_server_b.acl_url.replace("app-s3cret-pw", "nope"), "RETRY": 0},
        }
    )
    assert registry.get("acl").acl_whoami() == "app"
    with pytest.raises(redis.exceptions.AuthenticationError):
        registry.get("wrong").ping()


def test_fake_connections_get_one_server_each_and_aliases_share_it(
    registry: ConnectionRegistry,
) -> None:
    registry.configure({"a": {"FAKE": True}, "b": {"FAKE": True}, "a2": {"ALIAS": "a"}})
    registry.get("a").set("k", "a")
    assert registry.get("b").get("k") is None
    assert registry.get("a2").get("k") == b"a"


def test_cluster_routes_keys_and_limits_each_node(
    registry: ConnectionRegistry, redis_cluster: Any
) -> None:
    registry.configure({"cache": {"URL": redis_cluster.url, "CLUSTER": True, "MAX_CONNECTIONS": 7}})
    r = registry.get("cache")
    assert isinstance(r, redis.cluster.RedisCluster)
    for i in range(30):
        r.set(f"key:{i}", i)
    assert [int(r.get(f"key:{i}")) for i in range(30)] == list(range(30))  # type: ignore[arg-type]
    primaries = r.get_primaries()
    assert len(primaries) == 3
    for node in primaries:
        pool = node.redis_connection.connection_pool
        assert pool.max_connections == 7
        assert pool.connection_name == "cache"


def test_cluster_reads_from_replicas(registry: ConnectionRegistry, redis_cluster: Any) -> None:
    registry.configure(
        {"cache": {"URL": redis_cluster.url, "CLUSTER": True, "READ_FROM_REPLICAS": True}}
    )
    r = registry.get("cache")
    # A fresh cluster announces its replicas a moment after it reports ok, and not to every
    # node at once: wait until the client's own slot table (read from one node) lists one.
    deadline = time.monotonic() + 10
    slot = r.keyslot("rk")
    while len(r.nodes_manager.slots_cache.get(slot, [])) < 2:
        assert time.monotonic() < deadline, "the client never saw a replica of the key's slot"
        time.sleep(0.1)
        r.nodes_manager.initialize()
    r.set("rk", "v")
    while r.get("rk") != b"v":  # replication is asynchronous
        assert time.monotonic() < deadline, "the replica never received the key"
        time.sleep(0.05)
    for _ in range(6):
        assert r.get("rk") == b"v"
    replica_reads = 0
    for node in r.get_replicas():
        stats = node.redis_connection.info("commandstats")
        replica_reads += stats.get("cmdstat_get", {}).get("calls", 0)
    assert replica_reads >= 6


def test_sentinel_finds_the_primary(registry: ConnectionRegistry, redis_sentinel: Any) -> None:
    registry.configure(
        {"ha": {"SENTINELS": redis_sentinel.sentinels, "SERVICE_NAME": redis_sentinel.service_name}}
    )
    r = registry.get("ha")
    r.set("ha-key", "1")
    assert r.info("replication")["role"] == "master"
    primary = redis_sentinel.primary_address()
    assert primary is not None
    with redis.Redis(*primary) as raw:
        assert raw.get("ha-key") == b"1"


def test_same_client_every_call_and_aliases_share_it(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": {"URL": redis_server.url}, "sessions": {"ALIAS": "default"}})
    assert registry.get("default") is registry.get("default")
    assert registry.get("sessions") is registry.get("default")
    assert registry.names() == ["default", "sessions"]


def test_two_names_with_one_url_do_not_share_a_pool(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {"a": {"URL": redis_server.url}, "b": {"URL": redis_server.url, "MAX_CONNECTIONS": 2}}
    )
    assert registry.get("a").connection_pool is not registry.get("b").connection_pool
    assert registry.get("b").connection_pool.max_connections == 2


def test_pools_are_created_lazily(registry: ConnectionRegistry, redis_server: Any) -> None:
    before = client_count(redis_server)
    registry.configure(
        {"default": {"URL": redis_server.url}, "down": {"URL": "redis://127.0.0.1:1"}}
    )
    assert registry.created_clients() == {}
    registry.get("default")
    assert client_count(redis_server) == before  # a client alone opens no socket
    assert list(registry.created_clients()) == ["default"]


def test_many_threads_get_one_client(registry: ConnectionRegistry, redis_server: Any) -> None:
    registry.configure({"default": {"URL": redis_server.url}})
    seen: list[object] = []
    barrier = threading.Barrier(16)

    def grab() -> None:
        barrier.wait()
        seen.append(registry.get("default"))

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1


def test_unknown_name_lists_the_configured_ones(registry: ConnectionRegistry) -> None:
    registry.configure({"default": {"FAKE": True}, "users": {"FAKE": True}})
    with pytest.raises(ConnectionNotFound) as info:
        registry.get("nope")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == (
        "Redis connection 'nope' is not configured. Configured connections: 'default', 'users'."
    )


def test_configure_replaces_the_set_and_closes_old_pools(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": {"URL": redis_server.url}})
    old = registry.get("default")
    old.ping()
    assert old.connection_pool.usage().created == 1
    registry.configure({"other": {"FAKE": True}})
    assert registry.names() == ["other"]
    # the old pool's socket is closed
    usage = old.connection_pool.usage()
    assert (usage.created, usage.in_use) == (0, 0)
    with redis_server.client() as raw:
        names = [c["name"] for c in raw.client_list()]
    assert len(names) == 1  # only the raw client itself
    with pytest.raises(ConnectionNotFound):
        registry.get("default")


def test_invalid_configure_keeps_the_current_connections(registry: ConnectionRegistry) -> None:
    registry.configure({"default": {"FAKE": True}})
    registry.get("default").set("kept", 1)
    with pytest.raises(ConfigurationError):
        registry.configure({"default": {"URL": "nope://"}})
    assert registry.get("default").get("kept") == b"1"


def test_embedded_default_when_nothing_is_configured() -> None:
    reg = ConnectionRegistry()
    assert reg.spec("default").kind == "fake"
    assert reg.get().ping() is True


def test_settings_loader_is_read_lazily_once(redis_server: Any) -> None:
    calls: list[int] = []

    def load() -> dict[str, Any]:
        calls.append(1)
        return {"default": {"URL": redis_server.url}}

    reg = ConnectionRegistry()
    reg.use_settings(load)
    assert calls == []
    reg.get().ping()
    reg.get().ping()
    assert calls == [1]
    reg.reload()
    reg.get().ping()
    assert calls == [1, 1]
    reg.close_all()


def test_module_level_api_uses_the_global_registry(redis_server: Any) -> None:
    redis_conn.connections.configure(
        {"default": {"URL": redis_server.url}, "u": {"ALIAS": "default"}}
    )
    try:
        assert redis_conn.get_redis("u") is redis_conn.get_redis()
        assert redis_conn.connections.names() == ["default", "u"]
    finally:
        redis_conn.connections.configure(None)


def test_retry_and_health_check_come_from_settings(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {"default": {"URL": redis_server.url, "RETRY": 5, "HEALTH_CHECK_INTERVAL": 7}}
    )
    kwargs = registry.get().connection_pool.connection_kwargs
    assert kwargs["retry"].get_retries() == 5
    assert kwargs["health_check_interval"] == 7


def test_client_and_pool_reprs_hide_the_password(
    registry: ConnectionRegistry, redis_server_b: Any
) -> None:
    registry.configure({"acl": {"URL": redis_server_b.acl_url}})
    r = registry.get("acl")
    assert "app-s3cret-pw" not in repr(r.connection_pool)
    assert "app-s3cret-pw" not in repr(registry.spec("acl"))
    assert "app-s3cret-pw" not in repr(r)


# -- asyncio clients of event loops that ended ----------------------------------------------------
# Each event loop gets its own asyncio clients. asyncio.run() (and asgiref, uvicorn, pytest-asyncio)
# end a loop with loop.shutdown_asyncgens(): the registry closes that loop's clients then, so no
# socket outlives its loop and nothing is left for the garbage collector to warn about.


def resource_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_asyncio_run_300_times_leaves_no_unclosed_client_and_no_socket(redis_server: Any) -> None:
    registry = ConnectionRegistry(
        {"default": {"URL": redis_server.url}, "other": {"URL": redis_server.url}}
    )
    baseline = client_count(redis_server)

    async def use() -> None:
        await registry.get_async("default").incr("runs")
        await registry.get_async("other").get("runs")

    try:
        with warnings.catch_warnings():  # what earlier tests left for the collector
            warnings.simplefilter("ignore", ResourceWarning)  # is not this test's
            gc.collect()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(300):
                asyncio.run(use())
            gc.collect()
        assert resource_warnings(caught) == []
        assert registry._async_clients == {}  # the bookkeeping does not grow with the loops
        with redis_server.client() as raw:
            assert raw.get("runs") == b"300"
        wait_until(
            lambda: client_count(redis_server) == baseline,
            5,
            lambda: f"{client_count(redis_server)} clients on the server, {baseline} before",
        )
    finally:
        registry.close_all()


@pytest.mark.parametrize("multiplex", [False, True], ids=["pooled", "multiplex"])
def test_a_loop_closed_without_shutdown_is_forgotten_quietly(
    redis_server: Any, multiplex: bool
) -> None:
    """loop.close() without shutdown_asyncgens(): the registry cannot close that loop's
    sockets (its transports are gone with it), but it drops them without an error of its own,
    and the next loop gets new clients. MULTIPLEX too: its reader and writer tasks are
    destroyed pending, and must not touch the closed loop as they go."""
    errors: list[Any] = []
    saved_hook = sys.unraisablehook
    sys.unraisablehook = errors.append
    registry = ConnectionRegistry({"default": {"URL": redis_server.url, "MULTIPLEX": multiplex}})

    async def use() -> Any:
        client = registry.get_async("default")
        await client.ping()
        return client

    try:
        with warnings.catch_warnings():  # what earlier tests left for the collector
            warnings.simplefilter("ignore", ResourceWarning)  # is not this test's
            gc.collect()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop = asyncio.new_event_loop()
            first = loop.run_until_complete(use())
            loop.close()
            second = asyncio.run(use())
            del first
            gc.collect()
        assert second is not None
        assert registry._async_clients == {}
        # Only asyncio's and redis-py's own notes about the abandoned socket, nothing of ours
        # (an error of ours would be an "Exception ignored" that fails the test run).
        package = Path(redis_conn.__file__).parent
        assert caught, "the first loop's socket should have been reported unclosed"
        assert {w.category for w in caught} == {ResourceWarning}
        assert not [w for w in caught if Path(w.filename).is_relative_to(package)]
        assert [f"{e.exc_type.__name__}: {e.exc_value}" for e in errors] == []
    finally:
        sys.unraisablehook = saved_hook
        registry.close_all()


def test_aclose_async_and_close_all_still_close_a_running_loops_clients(redis_server: Any) -> None:
    registry = ConnectionRegistry({"default": {"URL": redis_server.url}})
    baseline = client_count(redis_server)
    started, release = threading.Event(), threading.Event()

    async def explicit() -> None:
        await registry.get_async("default").ping()
        await registry.aclose_async()
        assert registry._async_clients == {}
        await registry.get_async("default").ping()  # a new client after aclose_async

    async def closed_from_another_thread() -> None:
        await registry.get_async("default").ping()
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)

    try:
        with warnings.catch_warnings():  # what earlier tests left for the collector
            warnings.simplefilter("ignore", ResourceWarning)  # is not this test's
            gc.collect()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.run(explicit())
            worker = threading.Thread(target=asyncio.run, args=(closed_from_another_thread(),))
            worker.start()
            assert started.wait(5)
            registry.close_all()  # the loop runs in the worker thread
            wait_until(
                lambda: client_count(redis_server) == baseline,
                5,
                lambda: f"{client_count(redis_server)} clients, {baseline} before",
            )
            release.set()
            worker.join(5)
            gc.collect()
        assert resource_warnings(caught) == []
        assert registry._async_clients == {}
    finally:
        release.set()
        registry.close_all()


@pytest.mark.parametrize("multiplex", [False, True], ids=["pooled", "multiplex"])
def test_a_registry_dropped_after_its_loop_closed_leaves_no_error(
    redis_server: Any, multiplex: bool
) -> None:
    """The registry's closer of that loop is garbage collected unfinished: nothing may try to
    run it on the closed loop ("Exception ignored ... Event loop is closed", an error nobody
    can catch). Nor may a MULTIPLEX connection's reader and writer tasks."""
    errors: list[Any] = []
    saved_hook = sys.unraisablehook
    sys.unraisablehook = errors.append
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            registry = ConnectionRegistry(
                {"default": {"URL": redis_server.url, "MULTIPLEX": multiplex}}
            )

            async def use(registry: ConnectionRegistry) -> None:
                await registry.get_async("default").ping()

            loop = asyncio.new_event_loop()
            loop.run_until_complete(use(registry))
            loop.close()
            del registry
            gc.collect()
    finally:
        sys.unraisablehook = saved_hook
    assert [f"{e.exc_type.__name__}: {e.exc_value}" for e in errors] == []
