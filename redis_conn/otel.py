"""OpenTelemetry metrics (the ``otel`` extra): the one module that imports ``opentelemetry``.

Names and attributes follow OpenTelemetry's database-client semantic conventions, with
``db.client.connection.pool.name`` set to the connection name (an alias reports as the
connection that owns its pool):

- ``db.client.connection.count`` (by ``db.client.connection.state``: ``idle``, ``used``) and
  ``db.client.connection.max``: read from the pools when the metrics are collected, so they
  cost nothing between collections;
- ``db.client.connection.wait_time`` and ``db.client.connection.timeouts``: from the pools'
  ``observer`` hook, set only here (the asyncio cluster client's node gates have one too);
- ``db.client.operation.duration``: each command of a client, through a wrapper of the
  client's ``execute_command`` installed when the client is built;
- ``redis_conn.request.commands``, ``redis_conn.request.round_trips`` and
  ``redis_conn.request.duration``: one data point per request whose pipeline sent something.
"""

from __future__ import annotations

import functools
import inspect
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import version
from time import perf_counter
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, MeterProvider, Observation

from redis_conn.async_cluster_nodes import node_gates_of, node_usages
from redis_conn.config import ConnectionSpec

# What the metrics layer hands us: the clients it was given, by owning connection name.
Clients = Callable[[], Iterable[tuple[str, Any]]]

POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"
SYSTEM = "db.system.name"
OPERATION = "db.operation.name"
ERROR_TYPE = "error.type"

# The semantic conventions' advice for database durations, in seconds.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
COUNT_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def configured_provider() -> MeterProvider | None:
    """The global MeterProvider, or ``None`` while none was set (the API's placeholder)."""
    provider = otel_metrics.get_meter_provider()
    if isinstance(provider, otel_metrics.NoOpMeterProvider):
        return None
    # Until set_meter_provider() is called the API hands out a proxy that records nothing
    # yet; measuring into it would cost time and show nothing. Its class is not public.
    if type(provider).__name__ == "_ProxyMeterProvider":
        return None
    return provider


_CACHE_GAUGES = (
    ("entries", "{entry}", "Replies kept in the client-side cache."),
    ("bytes", "By", "Bytes the client-side cache's entries take (keys and values)."),
)
_CACHE_COUNTERS = (
    ("hits", "{read}", "Reads answered from the client-side cache."),
    ("misses", "{read}", "Cacheable reads that went to the server."),
    ("invalidations", "{entry}", "Local copies dropped because their key changed."),
    ("flushes", "{flush}", "Times the whole client-side cache was emptied."),
)


class OTelRecorder:
    """Every instrument of redis_conn, on one MeterProvider: a :class:`redis_conn.metrics.Recorder`.

    ``clients`` yields the clients the metrics layer was given (it is fed, it never looks);
    the gauges read their pools when they are collected."""

    enabled = True

    def __init__(self, provider: MeterProvider, clients: Clients) -> None:
        self.provider = provider
        self._clients = clients
        meter = provider.get_meter("redis_conn", version("redis_conn"))
        self.wait_time = meter.create_histogram(
            "db.client.connection.wait_time",
            unit="s",
            description="The time it took to obtain an open connection from the pool.",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        self.timeouts = meter.create_counter(
            "db.client.connection.timeouts",
            unit="{timeout}",
            description="Checkouts that failed because the pool had no connection to lend.",
        )
        self.operation_duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[self._observe_counts],
            unit="{connection}",
            description="Connections in the pools, by state (idle or used).",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.max",
            callbacks=[self._observe_max],
            unit="{connection}",
            description="The most connections the pools may open (MAX_CONNECTIONS).",
        )
        self.request_commands = meter.create_histogram(
            "redis_conn.request.commands",
            unit="{command}",
            description="Commands a request's pipeline sent.",
            explicit_bucket_boundaries_advisory=COUNT_BUCKETS,
        )
        self.request_round_trips = meter.create_histogram(
            "redis_conn.request.round_trips",
            unit="{round_trip}",
            description="Round trips (one batch per connection per execute) of a request.",
            explicit_bucket_boundaries_advisory=COUNT_BUCKETS,
        )
        self.request_duration = meter.create_histogram(
            "redis_conn.request.duration",
            unit="s",
            description="Time a request spent sending its pipeline and reading the replies.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

        # CLIENT_CACHE (CONTRACT section 11): the same counts as the health report's.
        for field, unit, what in _CACHE_GAUGES:
            meter.create_observable_up_down_counter(
                f"redis_conn.client_cache.{field}",
                callbacks=[self._cache_observer(field)],
                unit=unit,
                description=what,
            )
        for field, unit, what in _CACHE_COUNTERS:
            meter.create_observable_counter(
                f"redis_conn.client_cache.{field}",
                callbacks=[self._cache_observer(field)],
                unit=unit,
                description=what,
            )

    # -- hooks -----------------------------------------------------------------------------

    def instrument(self, spec: ConnectionSpec, client: Any) -> None:
        if spec.kind == "fake":  # an in-process server: nothing a dashboard should show
            return
        for pool in _pools(client):
            self.observe_pool(pool, spec.root)
        gates = node_gates_of(client)
        if gates is not None:  # the asyncio cluster client: a gate per node, no pool
            self.observe_pool(gates, spec.root)
        execute = client.execute_command
        timed = _timed_async if inspect.iscoroutinefunction(execute) else _timed
        # An instance attribute shadows the class's method for this client only.
        client.execute_command = timed(execute, self.operation_duration, spec.root)

    def observe_pool(self, pool: Any, name: str) -> None:
        if getattr(pool, "observer", False) is None:
            pool.observer = PoolMetrics(self.wait_time, self.timeouts, name)

    def request_finished(self, commands: int, round_trips: int, seconds: float) -> None:
        self.request_commands.record(commands)
        self.request_round_trips.record(round_trips)
        self.request_duration.record(seconds)

    # -- gauges, read at collection time ----------------------------------------------------

    def _observe_counts(self, options: CallbackOptions) -> Iterable[Observation]:
        used: dict[str, int] = defaultdict(int)
        idle: dict[str, int] = defaultdict(int)
        for name, usage in self._usages():
            used[name] += usage.in_use
            idle[name] += usage.idle
        for name in used:
            yield Observation(used[name], {POOL_NAME: name, STATE: "used"})
            yield Observation(idle[name], {POOL_NAME: name, STATE: "idle"})

    def _observe_max(self, options: CallbackOptions) -> Iterable[Observation]:
        most: dict[str, int] = defaultdict(int)
        for name, usage in self._usages():
            most[name] += usage.max_connections
        for name, value in most.items():
            yield Observation(value, {POOL_NAME: name})

    def _cache_observer(self, field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            seen: set[int] = set()
            for name, client in self._clients():
                cache = getattr(client, "client_cache", None)
                if cache is not None and id(cache) not in seen:
                    seen.add(id(cache))
                    yield Observation(cache.stats()[field], {POOL_NAME: name})

        return observe

    def _usages(self) -> Iterator[tuple[str, Any]]:
        """Every pool still in service of every client the metrics layer was given: the sync
        one and one per event loop, per name. A pool retired by ``close_all()`` or
        ``configure()`` is no longer counted, even if someone still holds its client."""
        for name, client in self._clients():
            for pool in _pools(client):
                if pool.retired:
                    continue
                # A cluster node found after the client was built gets its hook here.
                self.observe_pool(pool, name)
                yield name, pool.usage()
            for usage in node_usages(client) or ():
                yield name, usage


class PoolMetrics:
    """A pool's :class:`~redis_conn.pools.PoolObserver`: records under its connection name."""

    __slots__ = ("_attributes", "_timeouts", "_wait_time")

    def __init__(self, wait_time: Histogram, timeouts: Counter, name: str) -> None:
        self._wait_time = wait_time
        self._timeouts = timeouts
        self._attributes = {POOL_NAME: name}

    def waited(self, seconds: float) -> None:
        self._wait_time.record(seconds, self._attributes)

    def timed_out(self) -> None:
        self._timeouts.add(1, self._attributes)


def _pools(client: Any) -> list[Any]:
    """The pools of a client that can say how full they are (a cluster: one per node)."""
    if hasattr(client, "get_nodes") and hasattr(client, "nodes_manager"):
        nodes = client.get_nodes()
        candidates = [
            node.redis_connection.connection_pool
            for node in nodes
            if getattr(node, "redis_connection", None) is not None
        ]
    else:
        candidates = [getattr(client, "connection_pool", None)]
    return [pool for pool in candidates if hasattr(pool, "usage")]


def _attributes_for(name: str) -> Callable[[Any], dict[str, str]]:
    """Attributes per command name, made once per command (command names are few)."""
    cache: dict[Any, dict[str, str]] = {}

    def attributes(command: Any) -> dict[str, str]:
        found = cache.get(command)
        if found is None:
            text = command.decode() if isinstance(command, bytes) else str(command)
            found = cache[command] = {
                SYSTEM: "redis",
                OPERATION: text.upper(),
                POOL_NAME: name,
            }
        return found

    return attributes


def _timed(execute: Callable[..., Any], histogram: Histogram, name: str) -> Callable[..., Any]:
    attributes = _attributes_for(name)

    @functools.wraps(execute)
    def execute_command(*args: Any, **options: Any) -> Any:
        started = perf_counter()
        try:
            result = execute(*args, **options)
        except Exception as exc:
            failed = {**attributes(args[0]), ERROR_TYPE: type(exc).__qualname__}
            histogram.record(perf_counter() - started, failed)
            raise
        histogram.record(perf_counter() - started, attributes(args[0]))
        return result

    return execute_command


def _timed_async(
    execute: Callable[..., Any], histogram: Histogram, name: str
) -> Callable[..., Any]:
    attributes = _attributes_for(name)

    @functools.wraps(execute)
    async def execute_command(*args: Any, **options: Any) -> Any:
        started = perf_counter()
        try:
            result = await execute(*args, **options)
        except Exception as exc:
            failed = {**attributes(args[0]), ERROR_TYPE: type(exc).__qualname__}
            histogram.record(perf_counter() - started, failed)
            raise
        histogram.record(perf_counter() - started, attributes(args[0]))
        return result

    return execute_command
