"""The pooled asyncio cluster client (CLUSTER without MULTIPLEX): BLOCKING, POOL_TIMEOUT and
MAX_CONNECTIONS per node (CONTRACT section 1), and a write sent once (section 6), against the
suite's real cluster.

A node's connections are held busy by BLPOPs sent through the client itself, and freed by an
LPUSH from a plain redis-py client; the waits are seen on the node's gate
(:mod:`redis_conn.async_cluster_nodes`), never guessed with sleeps. The exactly-once test kills
the clients' connections on every primary (CLIENT KILL TYPE normal) while 1,000 tasks INCR a
few keys: each counter must be at least the INCRs that succeeded, and at most those plus the
ones reported as "may or may not have run".
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import itertools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.exceptions import RedisClusterException, RedisError

from redis_conn import ConnectionRegistry, OutcomeUnknown, PoolExhausted
from redis_conn.async_clients import AsyncNamedRedisCluster
from redis_conn.async_cluster_nodes import NodeGate
from redis_conn.health_text import render

try:
    from servers import ClusterDeployment
    from servers import eventually as polled_until
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import ClusterDeployment
    from tests.servers import eventually as polled_until

DEADLINE = 30.0  # seconds any awaited condition may take (a loaded machine)
TASKS = 1_000
_names = itertools.count()


@pytest.fixture
def name() -> Iterator[str]:
    """A server-side client name of this test's own."""
    yield f"cluster-pool-{next(_names)}"


def registry_for(cluster: ClusterDeployment, name: str, **extra: Any) -> ConnectionRegistry:
    settings = {
        "URL": cluster.url,
        "CLUSTER": True,
        "MULTIPLEX": False,  # the pooled client (MULTIPLEX is the default)
        "OPTIONS": {"client_name": name},
        **extra,
    }
    return ConnectionRegistry({"c": settings})


def run(registry: ConnectionRegistry, body: Callable[[Any], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            client = registry.get_async("c")
            assert isinstance(client, AsyncNamedRedisCluster)
            await client.initialize()
            return await body(client)
        finally:
            await registry.aclose_async()

    return asyncio.run(main())


eventually = functools.partial(polled_until, timeout=DEADLINE)


def gate_of(client: AsyncNamedRedisCluster, key: str) -> NodeGate:
    assert client.node_gates is not None
    return client.node_gates.of(client.get_node_from_key(key))


def raw_value(cluster: ClusterDeployment, key: str) -> int:
    with cluster.client() as raw:
        return int(raw.get(key) or 0)


def blocked_on(cluster: ClusterDeployment, key: str, name: str) -> int:
    """Our client's connections blocked in BLPOP on the node that serves ``key``."""
    with cluster.client() as raw:
        node = raw.get_node_from_key(key)
        clients = raw.client_list(target_nodes=node)
    return sum(1 for c in clients if c["name"] == name and "b" in c["flags"])


class Holders:
    """``count`` BLPOPs on ``key``'s node through the client: each holds one connection."""

    def __init__(self, client: Any, cluster: ClusterDeployment, key: str, name: str) -> None:
        self.client, self.cluster, self.key, self.name = client, cluster, key, name
        self.tasks: list[asyncio.Task[Any]] = []

    async def hold(self, count: int) -> None:
        self.tasks += [asyncio.create_task(self.client.blpop([self.key], 0)) for _ in range(count)]
        await eventually(
            lambda: blocked_on(self.cluster, self.key, self.name) == len(self.tasks),
            f"{len(self.tasks)} BLPOPs blocked on the node",
        )

    async def free(self) -> None:
        with self.cluster.client() as raw:
            raw.lpush(self.key, *range(len(self.tasks)))
        await asyncio.gather(*self.tasks)


# -- BLOCKING: wait for a free connection of the node ---------------------------------------------


def test_a_thousand_tasks_wait_for_a_busy_node_and_all_succeed_once_it_is_freed(
    redis_cluster: ClusterDeployment, name: str
) -> None:
    """The issue's load: a node's 50 connections (the default MAX_CONNECTIONS) busy, 1,000
    tasks: they wait in line, and every one of them runs once the node is freed."""
    registry = registry_for(redis_cluster, name, POOL_TIMEOUT=DEADLINE * 2)

    async def body(client: Any) -> list[Any]:
        holders = Holders(client, redis_cluster, "{p}list", name)
        await holders.hold(50)
        gate = gate_of(client, "{p}n")
        tasks = [asyncio.create_task(client.incr("{p}n")) for _ in range(TASKS)]
        await eventually(lambda: gate.waiting == TASKS, f"{TASKS} tasks waiting")
        assert not any(task.done() for task in tasks)
        await holders.free()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert (gate.waiting, gate.available) == (0, 50)
        return results

    results = run(registry, body)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sorted(results) == list(range(1, TASKS + 1))
    assert raw_value(redis_cluster, "{p}n") == TASKS


def test_pipelines_and_transactions_wait_for_the_node_too(
    redis_cluster: ClusterDeployment, name: str
) -> None:
    registry = registry_for(redis_cluster, name, MAX_CONNECTIONS=2, POOL_TIMEOUT=DEADLINE * 2)

    async def pipeline(client: Any, transaction: bool) -> list[Any]:
        pipe = client.pipeline(transaction=transaction)
        pipe.incr("{p}n").incr("{p}m")
        return list(await pipe.execute())

    async def body(client: Any) -> list[Any]:
        holders = Holders(client, redis_cluster, "{p}list", name)
        await holders.hold(2)
        gate = gate_of(client, "{p}n")
        tasks = [
            asyncio.create_task(pipeline(client, transaction)) for transaction in (False, True) * 10
        ]
        await eventually(lambda: gate.waiting == 20, "20 pipelines and transactions waiting")
        await holders.free()
        results = await asyncio.gather(*tasks)
        assert (gate.waiting, gate.available) == (0, 2)
        return results

    results = run(registry, body)
    assert sorted(n for pair in results for n in pair) == sorted(list(range(1, 21)) * 2)
    assert raw_value(redis_cluster, "{p}n") == raw_value(redis_cluster, "{p}m") == 20


def test_pool_timeout_elapsing_is_the_named_pool_exhausted_error(
    redis_cluster: ClusterDeployment, name: str
) -> None:
    registry = registry_for(redis_cluster, name, MAX_CONNECTIONS=2, POOL_TIMEOUT=0.2)

    async def body(client: Any) -> list[str]:
        holders = Holders(client, redis_cluster, "{p}list", name)
        await holders.hold(2)
        errors = []
        for attempt in (
            lambda: client.incr("{p}n"),
            lambda: client.pipeline().incr("{p}n").execute(),
            lambda: client.pipeline(transaction=True).incr("{p}n").execute(),
        ):
            with pytest.raises(PoolExhausted) as info:
                await attempt()
            errors.append(str(info.value))
        await holders.free()
        assert await client.incr("{p}n") == 1  # the node lends again
        return errors

    message = (
        "Redis connection 'c': pool exhausted, no connection was released within "
        "POOL_TIMEOUT=0.2s; MAX_CONNECTIONS=2."
    )
    assert run(registry, body) == [message] * 3
    assert raw_value(redis_cluster, "{p}n") == 1


def test_without_blocking_a_full_node_fails_at_once_with_the_named_error(
    redis_cluster: ClusterDeployment, name: str
) -> None:
    registry = registry_for(redis_cluster, name, MAX_CONNECTIONS=2, BLOCKING=False)

    async def body(client: Any) -> list[Any]:
        holders = Holders(client, redis_cluster, "{p}list", name)
        await holders.hold(2)
        results = await asyncio.gather(
            *(client.incr("{p}n") for _ in range(TASKS)), return_exceptions=True
        )
        pipe = client.pipeline()
        pipe.incr("{p}n")
        results += await asyncio.gather(pipe.execute(), return_exceptions=True)
        assert gate_of(client, "{p}n").waiting == 0
        await holders.free()
        return results

    results = run(registry, body)
    message = (
        "Redis connection 'c': pool exhausted, all connections are in use and the pool does "
        "not block (BLOCKING=False); MAX_CONNECTIONS=2."
    )
    assert {type(r) for r in results} == {PoolExhausted}
    assert {str(r) for r in results} == {message}
    assert raw_value(redis_cluster, "{p}n") == 0


def test_cancelled_waiters_take_no_connection_and_cancelled_holders_give_theirs_back(
    redis_cluster: ClusterDeployment, name: str
) -> None:
    registry = registry_for(redis_cluster, name, MAX_CONNECTIONS=3, POOL_TIMEOUT=DEADLINE * 2)

    async def body(client: Any) -> None:
        holders = Holders(client, redis_cluster, "{p}list", name)
        await holders.hold(3)
        gate = gate_of(client, "{p}n")
        waiters = [asyncio.create_task(client.incr("{p}n")) for _ in range(TASKS)]
        await eventually(lambda: gate.waiting == TASKS, f"{TASKS} tasks waiting")
        for task in waiters:
            task.cancel()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert (gate.waiting, gate.available) == (0, 0)

        # A holder cancelled in the middle of its BLPOP frees its connection for the next.
        late = asyncio.create_task(client.incr("{p}n"))
        await eventually(lambda: gate.waiting == 1, "one task waiting")
        holders.tasks[0].cancel()
        assert await late == 1
        holders.tasks.pop(0)
        await holders.free()
        assert (gate.waiting, gate.available) == (0, 3)

        # The node still lends all MAX_CONNECTIONS at once.
        holders = Holders(client, redis_cluster, "{p}list", name)
        await holders.hold(3)
        await holders.free()

    run(registry, body)
    assert raw_value(redis_cluster, "{p}n") == 1  # no cancelled waiter ran


def test_with_multiplex_the_pooled_connections_of_blocking_commands_wait_too(
    redis_cluster: ClusterDeployment, name: str
) -> None:
    """MULTIPLEX sends a blocking command on a pooled connection of its node: the same gate."""
    registry = registry_for(
        redis_cluster, name, MULTIPLEX=True, MAX_CONNECTIONS=2, POOL_TIMEOUT=DEADLINE * 2
    )

    async def body(client: Any) -> list[Any]:
        holders = Holders(client, redis_cluster, "{p}list", name)
        await holders.hold(2)
        gate = gate_of(client, "{p}list")
        late = asyncio.create_task(client.blpop(["{p}other"], 0))
        await eventually(lambda: gate.waiting == 1, "a BLPOP waiting")
        assert await client.incr("{p}n") == 1  # one-slot commands share the node's connection
        await holders.free()
        await eventually(lambda: blocked_on(redis_cluster, "{p}list", name) == 1, "BLPOP sent")
        with redis_cluster.client() as raw:
            raw.lpush("{p}other", "x")
        return list(await late)

    assert run(registry, body) == [b"{p}other", b"x"]


# -- exactly once: connections killed under 1,000 tasks -------------------------------------------


KEYS = ["{a}n", "{b}n", "{c}n", "{d}n"]
INCRS_PER_TASK = 5
KILL_EVERY = 400  # INCRs answered between two waves of CLIENT KILL


@pytest.fixture
def redis_py_leaks() -> Iterator[None]:
    """redis-py 7.4's slot-map refresh after its connections were killed leaves sockets of its
    own unclosed (plain redis-py 7.4 too, under the same load). Requested first, this collects
    them after the other fixtures are torn down, under the test's warning filter, not later."""
    yield
    gc.collect()


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # redis-py 7.4's: see redis_py_leaks
@pytest.mark.parametrize("api", ["command", "pipeline"])
def test_a_thousand_tasks_incr_while_connections_are_killed_and_nothing_runs_twice(
    redis_py_leaks: None, redis_cluster: ClusterDeployment, name: str, api: str
) -> None:
    """CLIENT KILL TYPE normal on every primary, in waves paced by the INCRs answered: each
    counter is at least the INCRs that succeeded, and at most those plus the INCRs reported as
    "may or may not have run" (a re-sent INCR would push it above). Pipelines INCR two keys
    on two nodes: redis-py would send the whole pipeline again when one node's part failed."""
    registry = registry_for(redis_cluster, name, POOL_TIMEOUT=DEADLINE * 2)
    succeeded: collections.Counter[str] = collections.Counter()
    unknown: collections.Counter[str] = collections.Counter()
    not_run: collections.Counter[str] = collections.Counter()
    unexpected: list[BaseException] = []
    kills = []

    async def kill_wave() -> None:
        for node in redis_cluster.primary_nodes:
            raw = redis.asyncio.Redis(host=node.host, port=node.port)
            try:
                kills.append(await raw.execute_command("CLIENT", "KILL", "TYPE", "normal"))
            finally:
                await raw.aclose()

    async def body(client: Any) -> None:
        for key in KEYS:
            await client.set(key, 0)
        answered = 0
        waves: list[asyncio.Task[None]] = []

        def tally(key: str, outcome: Any) -> None:
            if not isinstance(outcome, BaseException):
                succeeded[key] += 1
            elif isinstance(outcome, OutcomeUnknown):  # ReplyNotUnderstood included
                unknown[key] += 1
            elif isinstance(outcome, RedisError | RedisClusterException):
                # Said not to have run: a full node, a connect that failed, no node reachable.
                assert "may or may not have run" not in str(outcome)
                not_run[key] += 1
            else:
                unexpected.append(outcome)

        async def incr(keys: list[str]) -> list[Any]:
            if len(keys) == 1:
                try:
                    return [await client.incr(keys[0])]
                except Exception as exc:
                    return [exc]
            pipe = client.pipeline()
            for key in keys:
                pipe.incr(key)
            try:
                return list(await pipe.execute(raise_on_error=False))
            except Exception as exc:  # the whole batch: each command's outcome
                return [exc] * len(keys)

        async def one(i: int) -> None:
            nonlocal answered
            for j in range(INCRS_PER_TASK):
                keys = [KEYS[(i + j) % len(KEYS)], KEYS[(i + j + 1) % len(KEYS)]]
                if api == "command":
                    keys = keys[:1]
                for key, outcome in zip(keys, await incr(keys), strict=True):
                    tally(key, outcome)
                answered += 1
                if answered % KILL_EVERY == 0:
                    waves.append(asyncio.create_task(kill_wave()))

        await asyncio.gather(*(one(i) for i in range(TASKS)))
        await asyncio.gather(*waves)

    run(registry, body)
    values = {key: raw_value(redis_cluster, key) for key in KEYS}
    report = {k: (values[k], succeeded[k], unknown[k], not_run[k]) for k in KEYS}
    assert unexpected == []
    assert sum(kills) > 0 and sum(unknown.values()) > 0, report  # the fault is real
    for key in KEYS:
        assert succeeded[key] <= values[key] <= succeeded[key] + unknown[key], report


# -- visible: the health report counts each node's connections ----------------------------------


def test_the_health_report_counts_the_nodes_connections_and_a_full_node(
    redis_cluster: ClusterDeployment, name: str
) -> None:
    """A node's 3 connections held by BLPOPs and 5 tasks in line: the report's asyncio counts
    hold them, and the connection is degraded with the full node named, as a full pool is."""
    registry = registry_for(redis_cluster, name, MAX_CONNECTIONS=3, POOL_TIMEOUT=DEADLINE * 2)

    async def body(client: Any) -> tuple[int, dict[str, Any], dict[str, Any], str]:
        holders = Holders(client, redis_cluster, "{p}list", name)
        await holders.hold(3)
        gate = gate_of(client, "{p}n")
        waiting = [asyncio.create_task(client.incr("{p}n")) for _ in range(5)]
        await eventually(lambda: gate.waiting == 5, "5 tasks waiting")
        report = registry.health(names=["c"])
        busy = report["connections"][0]
        text = render(report)
        await holders.free()
        await asyncio.gather(*waiting)
        freed = registry.health(names=["c"])["connections"][0]
        return len(client.get_nodes()), busy, freed, text

    nodes, busy, freed, text = run(registry, body)
    asyncio_part = busy["pool"]["asyncio"]
    # 3 lent on the busy node; the slot map was read on another node's (idle) connection.
    assert (asyncio_part["pools"], asyncio_part["in_use"]) == (nodes, 3), busy["pool"]
    assert asyncio_part["created"] >= 3
    assert busy["pool"]["class"] == "BlockingConnectionPool"
    assert busy["status"] == "degraded"
    assert "asyncio pool full: 3 of 3 in use" in busy["error"], busy["error"]
    counted = f"{asyncio_part['created']} asyncio connection(s) (3 in use) in {nodes} node pool(s)"
    assert f"c: POOL counts {counted} (one per node and event loop)" in text, text
    assert freed["pool"]["asyncio"]["in_use"] == 0
    assert freed["pool"]["asyncio"]["created"] >= 3
    assert freed["status"] == "ok", freed["error"]
