"""OpenTelemetry metrics, read back through the SDK's in-memory reader, on real servers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from redis_conn import PoolExhausted, metrics
from redis_conn.otel import DURATION_BUCKETS, OTelRecorder
from redis_conn.registry import ConnectionRegistry
from redis_conn.request_scope import RequestPipeline

POOL = "db.client.connection.pool.name"
# The gauges read every client built in this process: the tests use names no other test uses.


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.use_meter_provider(provider)
    try:
        yield reader
    finally:
        metrics.use_meter_provider(None)
        provider.shutdown()


@pytest.fixture
def registry() -> Iterator[ConnectionRegistry]:
    registry = ConnectionRegistry()
    yield registry
    registry.close_all()


def points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict[str, Any], Any]]:
    """Every data point of metric ``name``: (attributes, point)."""
    found = []
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
    return found


def by_pool(reader: InMemoryMetricReader, name: str, **extra: str) -> dict[str, Any]:
    return {
        attributes[POOL]: point
        for attributes, point in points(reader, name)
        if all(attributes.get(k.replace("_", ".")) == v for k, v in extra.items())
    }


# -- operation duration ---------------------------------------------------------------------


def test_each_command_is_timed_by_connection_name(
    reader: InMemoryMetricReader, registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {"default": {"URL": redis_server.url}, "sessions": {"ALIAS": "default"}},
        client_name_prefix="metrics",
    )
    client = registry.get("sessions")
    client.set("k", "v")
    client.get("k")
    client.get("k")
    with pytest.raises(redis.ResponseError):
        client.lpush("k", "x")  # WRONGTYPE
    durations = {
        (a["db.operation.name"], a.get("error.type")): p
        for a, p in points(reader, "db.client.operation.duration")
    }
    assert set(durations) == {("SET", None), ("GET", None), ("LPUSH", "ResponseError")}
    assert durations[("GET", None)].count == 2
    assert durations[("GET", None)].sum > 0
    assert tuple(durations[("GET", None)].explicit_bounds) == DURATION_BUCKETS
    (attributes, _) = points(reader, "db.client.operation.duration")[0]
    assert attributes[POOL] == "default"  # an alias reports as the pool's owner
    assert attributes["db.system.name"] == "redis"


@pytest.mark.parametrize("multiplex", [True, False], ids=["multiplex", "pooled"])
def test_asyncio_commands_are_timed(
    reader: InMemoryMetricReader, registry: ConnectionRegistry, redis_server: Any, multiplex: bool
) -> None:
    registry.configure({"default": {"URL": redis_server.url, "MULTIPLEX": multiplex}})

    async def use() -> None:
        try:
            client = registry.get_async("default")
            await client.set("k", "v")
            assert await client.get("k") == b"v"
        finally:
            await registry.aclose_async()

    asyncio.run(use())
    durations = by_pool(reader, "db.client.operation.duration", db_operation_name="GET")
    assert durations["default"].count == 1
    waits = by_pool(reader, "db.client.connection.wait_time")
    if multiplex:  # the shared connection: no checkout to wait for
        assert "default" not in waits
    else:
        assert waits["default"].count == 2  # one checkout per command


def test_cluster_commands_and_node_pools(
    reader: InMemoryMetricReader, registry: ConnectionRegistry, redis_cluster: Any
) -> None:
    registry.configure(
        {"metrics-cache": {"URL": redis_cluster.url, "CLUSTER": True, "MAX_CONNECTIONS": 4}}
    )
    client = registry.get("metrics-cache")
    for i in range(6):
        client.set(f"key{i}", i)
    assert by_pool(reader, "db.client.operation.duration")["metrics-cache"].count == 6
    assert by_pool(reader, "db.client.connection.wait_time")["metrics-cache"].count == 6
    nodes = len([n for n in client.get_nodes() if n.redis_connection is not None])
    assert by_pool(reader, "db.client.connection.max")["metrics-cache"].value == 4 * nodes


# -- pools: counts, wait time, timeouts ------------------------------------------------------


def test_connection_counts_by_state_and_the_maximum(
    reader: InMemoryMetricReader, registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"counted": {"URL": redis_server.url, "MAX_CONNECTIONS": 7}})
    pool = registry.get("counted").connection_pool
    held = [pool.get_connection() for _ in range(3)]
    pool.release(held.pop())
    try:
        used = by_pool(reader, "db.client.connection.count", db_client_connection_state="used")
        idle = by_pool(reader, "db.client.connection.count", db_client_connection_state="idle")
        assert (used["counted"].value, idle["counted"].value) == (2, 1)
        assert by_pool(reader, "db.client.connection.max")["counted"].value == 7
        assert by_pool(reader, "db.client.connection.wait_time")["counted"].count == 3
    finally:
        for connection in held:
            pool.release(connection)
    idle = by_pool(reader, "db.client.connection.count", db_client_connection_state="idle")
    assert idle["counted"].value == 3


def test_timeouts_are_counted_for_blocking_and_non_blocking_pools(
    reader: InMemoryMetricReader, registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {
            "fails": {"URL": redis_server.url, "MAX_CONNECTIONS": 1, "BLOCKING": False},
            "waits": {"URL": redis_server.url, "MAX_CONNECTIONS": 1, "POOL_TIMEOUT": 0.05},
        }
    )
    for name in ("fails", "waits"):
        pool = registry.get(name).connection_pool
        held = pool.get_connection()
        try:
            with pytest.raises(PoolExhausted):
                pool.get_connection()
        finally:
            pool.release(held)
    timeouts = by_pool(reader, "db.client.connection.timeouts")
    assert (timeouts["fails"].value, timeouts["waits"].value) == (1, 1)
    waits = by_pool(reader, "db.client.connection.wait_time")
    assert (waits["fails"].count, waits["waits"].count) == (1, 1)  # only the checkouts made


def test_asyncio_pool_timeouts_are_counted(
    reader: InMemoryMetricReader, registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 1, "BLOCKING": False}}
    )

    async def exhaust() -> None:
        pool = registry.get_async("default").connection_pool
        held = await pool.get_connection()
        try:
            with pytest.raises(PoolExhausted):
                await pool.get_connection()
        finally:
            await pool.release(held)
            await registry.aclose_async()

    asyncio.run(exhaust())
    assert by_pool(reader, "db.client.connection.timeouts")["default"].value == 1


def test_the_asyncio_cluster_clients_nodes_are_counted_waited_for_and_timed_out(
    reader: InMemoryMetricReader, registry: ConnectionRegistry, redis_cluster: Any
) -> None:
    """redis-py's asyncio cluster nodes lend connections without a pool: their gates
    (BLOCKING per node) report as the pools do."""
    registry.configure(
        {
            "metrics-acluster": {
                "URL": redis_cluster.url,
                "CLUSTER": True,
                "MULTIPLEX": False,
                "MAX_CONNECTIONS": 1,
                "BLOCKING": False,
            }
        }
    )

    async def exhaust() -> int:
        client = registry.get_async("metrics-acluster")
        try:
            for i in range(4):
                await client.set(f"{{m}}key{i}", i)
            blpop = asyncio.create_task(client.blpop(["{m}list"], 0))  # the node's only one
            gate = client.node_gates.of(client.get_node_from_key("{m}list"))
            deadline = time.monotonic() + 10
            while gate.available:
                assert time.monotonic() < deadline, "the BLPOP never took its connection"
                await asyncio.sleep(0.01)
            used = by_pool(reader, "db.client.connection.count", db_client_connection_state="used")
            assert used["metrics-acluster"].value == 1
            with pytest.raises(PoolExhausted):
                await client.get("{m}key0")
            with redis_cluster.client() as raw:
                raw.rpush("{m}list", "x")
            assert list(await blpop) == [b"{m}list", b"x"]
            return len(client.get_nodes())
        finally:
            await registry.aclose_async()

    nodes = asyncio.run(exhaust())
    assert by_pool(reader, "db.client.connection.timeouts")["metrics-acluster"].value == 1
    assert by_pool(reader, "db.client.connection.wait_time")["metrics-acluster"].count >= 5
    assert by_pool(reader, "db.client.connection.max")["metrics-acluster"].value == nodes


# -- per request ------------------------------------------------------------------------------


def test_each_request_records_its_commands_and_round_trips(
    reader: InMemoryMetricReader,
    registry: ConnectionRegistry,
    redis_server: Any,
    redis_server_b: Any,
) -> None:
    registry.configure({"default": {"URL": redis_server.url}, "other": {"URL": redis_server_b.url}})
    scope = RequestPipeline(registry)
    p = scope.pipeline
    p.incr("a")
    p.incr("b")
    p.execute()
    p["other"].incr("c")
    scope.flush()
    RequestPipeline(registry).flush()  # a request that used no Redis: not recorded
    ((_, commands),) = points(reader, "redis_conn.request.commands")
    ((_, round_trips),) = points(reader, "redis_conn.request.round_trips")
    ((_, duration),) = points(reader, "redis_conn.request.duration")
    assert (commands.count, commands.sum) == (1, 3)
    assert (round_trips.count, round_trips.sum) == (1, 2)
    assert duration.count == 1 and duration.sum == pytest.approx(scope.stats.seconds)


# -- nothing without OpenTelemetry ------------------------------------------------------------


def test_client_cache_counts_are_metrics(
    reader: InMemoryMetricReader, registry: ConnectionRegistry, redis_server: Any
) -> None:
    """CLIENT_CACHE's counts, the same as the health report's (CONTRACT section 11)."""
    registry.configure({"metrics-cc": {"URL": redis_server.url, "CLIENT_CACHE": True}})
    client = registry.get("metrics-cc")
    cache = registry.client_cache("metrics-cc")
    assert cache is not None
    client.set("k", "v")
    deadline = time.monotonic() + 10
    while cache.hits < 3 and time.monotonic() < deadline:  # kept once the cache listens
        client.get("k")
    stats = cache.stats()
    assert stats["hits"] >= 3
    for field in ("entries", "bytes", "hits", "misses", "invalidations", "flushes"):
        [point] = by_pool(reader, f"redis_conn.client_cache.{field}").values()
        assert point.value == stats[field], field


def test_without_a_meter_provider_nothing_is_hooked(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    metrics.use_meter_provider(None)  # the global provider: never set in the tests
    registry.configure({"default": {"URL": redis_server.url}})
    client = registry.get("default")
    assert client.get("missing") is None
    assert "execute_command" not in vars(client)  # the class's own method, unwrapped
    assert client.connection_pool.observer is None
    assert not metrics.current().enabled


def test_a_fake_connection_gets_no_metrics(
    reader: InMemoryMetricReader, registry: ConnectionRegistry
) -> None:
    registry.configure({"dev": {"FAKE": True}})
    registry.get("dev").set("k", "v")
    assert isinstance(metrics.current(), OTelRecorder)
    assert points(reader, "db.client.operation.duration") == []


def test_without_the_otel_extra_the_no_op_recorder_is_used(redis_server: Any) -> None:
    # A fresh interpreter in which the opentelemetry package cannot be imported.
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
        from redis_conn import metrics
        from redis_conn.registry import ConnectionRegistry

        registry = ConnectionRegistry({{"default": {{"URL": "{redis_server.url}"}}}})
        client = registry.get("default")
        client.set("k", "v")
        print(type(metrics.current()).__name__, "execute_command" in vars(client),
              client.connection_pool.observer)
        registry.close_all()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["NoRecorder", "False", "None"]
