"""MULTIPLEX on Redis Cluster (CONTRACT section 12), against real clusters.

One shared connection per node per event loop carries every task's one-slot commands; routing,
redirects (MOVED after a live slot migration, ASK during one), dedicated connections for
blocking commands, pipelines split per node, and section 6 when a node's connection is lost or
a node hangs or dies. Server-side facts (connections, counters, slot owners) are read with
plain redis-py clients.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.crc
from redis.exceptions import RedisClusterException

from redis_conn import ConnectionLostAfterWrite, ConnectionRegistry, OutcomeUnknown
from redis_conn.async_clients import MultiplexedRedisCluster
from redis_conn.async_pipeline import async_pipeline
from redis_conn.exceptions import ReplyNotUnderstood
from redis_conn.health_text import render
from redis_conn.registry import connections
from redis_conn.request_scope import RequestPipeline

try:
    from servers import ClusterDeployment, RedisServer, wait_until
    from servers import eventually as polled_until
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import ClusterDeployment, RedisServer, wait_until
    from tests.servers import eventually as polled_until

DEADLINE = 30.0  # seconds any awaited condition may take (a loaded machine)
_names = itertools.count()
NAME = "muxc-test"


@pytest.fixture(autouse=True)
def client_name() -> Iterator[str]:
    """A server-side name of this test's own, so that no earlier test's socket counts."""
    global NAME
    NAME = f"muxc-test-{next(_names)}"
    yield NAME


@pytest.fixture
def registry() -> Iterator[ConnectionRegistry]:
    saved = connections.source
    yield connections
    connections.close_all()
    saved.apply_to(connections)


def private_cluster(base: Path) -> ClusterDeployment:
    """3 primaries, no replica, and slots served while another primary is down (a dead or
    hung primary fails only its own slots)."""
    cluster = ClusterDeployment(base, replicas_per_primary=0)
    cluster.start()
    for node in cluster.nodes:
        with node.client() as raw:
            raw.config_set("cluster-require-full-coverage", "no")
    return cluster


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterDeployment]:
    """A cluster of this module only: its slots are moved around."""
    cluster = private_cluster(tmp_path_factory.mktemp("mux_cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def doomed_cluster(tmp_path: Path) -> Iterator[ClusterDeployment]:
    """A cluster of one test: a primary is killed."""
    cluster = private_cluster(tmp_path / "doomed")
    try:
        yield cluster
    finally:
        cluster.stop()


def settings(cluster: ClusterDeployment, **extra: Any) -> dict[str, Any]:
    options = {"client_name": NAME, **extra.pop("OPTIONS", {})}
    return {"URL": cluster.url, "CLUSTER": True, "MULTIPLEX": True, "OPTIONS": options, **extra}


def run(registry: ConnectionRegistry, body: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await body()
        finally:
            await registry.aclose_async()

    return asyncio.run(main())


eventually = functools.partial(polled_until, timeout=DEADLINE)


# What redis-py's topology discovery last sent on the connections it opens (CLUSTER SLOTS
# from the startup node, COMMAND for its key table): those are not the commands' connections.
DISCOVERY = {"cluster|slots", "cluster|shards", "cluster|nodes", "command", "command|docs"}


def named_connections(server: RedisServer) -> int:
    """Connections open on ``server`` under this test's client name, topology discovery's
    aside."""
    with server.client() as raw:
        return sum(1 for c in raw.client_list() if c["name"] == NAME and c["cmd"] not in DISCOVERY)


def owner(cluster: ClusterDeployment, key: str) -> RedisServer:
    """The node serving ``key``'s slot, as the cluster itself says."""
    slot = redis.crc.key_slot(key.encode())
    with cluster.primary_nodes[0].client() as raw:
        for start, end, primary, *_ in raw.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return cluster.node(int(primary[1]))
    raise AssertionError(f"slot {slot} is not served")


def keys_on_each_node(cluster: ClusterDeployment, count: int = 1) -> dict[int, list[str]]:
    """``count`` hash tags per primary (port -> keys)."""
    found: dict[int, list[str]] = {n.port: [] for n in cluster.primary_nodes}
    owners = slot_owners(cluster)
    for i in itertools.count():
        key = f"{{t{i}}}"
        keys = found[owners[redis.crc.key_slot(key.encode())]]
        if len(keys) < count:
            keys.append(key)
        if all(len(k) == count for k in found.values()):
            return found
    raise AssertionError("unreachable")


def slot_owners(cluster: ClusterDeployment) -> dict[int, int]:
    """Each slot's primary (slot -> port), as the cluster says now (read afresh each time: a
    table kept between calls goes stale after a reshard, and a new deployment may reuse a
    collected one's id)."""
    table: dict[int, int] = {}
    with cluster.primary_nodes[0].client() as raw:
        for start, end, primary, *_ in raw.execute_command("CLUSTER", "SLOTS"):
            for slot in range(start, end + 1):
                table[slot] = int(primary[1])
    return table


def node_id(server: RedisServer) -> str:
    with server.client() as raw:
        return str(raw.execute_command("CLUSTER", "MYID").decode())


def slot_owned_by(cluster: ClusterDeployment, slot: int, port: int) -> bool:
    for node in cluster.primary_nodes:
        with node.client() as raw:
            for start, end, primary, *_ in raw.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end and int(primary[1]) != port:
                    return False
    return True


class Migration:
    """A slot moved from one primary to another, step by step, as redis-cli --cluster
    reshard moves it (SETSLOT IMPORTING / MIGRATING, MIGRATE, SETSLOT NODE)."""

    def __init__(self, cluster: ClusterDeployment, slot: int, source: RedisServer) -> None:
        self.cluster, self.slot, self.source = cluster, slot, source
        self.target = next(n for n in cluster.primary_nodes if n.port != source.port)

    def begin(self) -> None:
        with self.target.client() as target, self.source.client() as source:
            target.execute_command(
                "CLUSTER", "SETSLOT", self.slot, "IMPORTING", node_id(self.source)
            )
            source.execute_command(
                "CLUSTER", "SETSLOT", self.slot, "MIGRATING", node_id(self.target)
            )

    def move_keys(self) -> None:
        with self.source.client() as source:
            while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", self.slot, 100):
                source.execute_command(
                    "MIGRATE", "127.0.0.1", self.target.port, "", 0, 5000, "KEYS", *keys
                )

    def finish(self) -> None:
        target_id = node_id(self.target)
        for node in (self.target, self.source, *self.cluster.primary_nodes):
            with node.client() as raw:
                raw.execute_command("CLUSTER", "SETSLOT", self.slot, "NODE", target_id)
        wait_until(
            lambda: slot_owned_by(self.cluster, self.slot, self.target.port),
            DEADLINE,
            lambda: f"slot {self.slot} not on {self.target.port} everywhere",
        )


# -- settings -----------------------------------------------------------------------------------


def test_multiplex_on_cluster_builds_the_multiplexed_cluster_client(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(redis_cluster)})

    async def body() -> Any:
        return registry.get_async("c")

    client = run(registry, body)
    assert isinstance(client, MultiplexedRedisCluster)
    assert isinstance(client, redis.asyncio.RedisCluster)


# -- routing ------------------------------------------------------------------------------------


def test_1000_tasks_read_their_own_keys_over_one_connection_per_node(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(redis_cluster)})

    async def body() -> tuple[list[list[Any]], dict[int, int], dict[int, int]]:
        r = registry.get_async("c")

        async def task(i: int) -> list[Any]:
            seen = []
            for j in range(6):
                await r.set(f"user:{i}", f"{i}:{j}")
                seen.append(await r.get(f"user:{i}"))
                seen.append(await r.incr(f"count:{i}"))
            return seen

        replies = await asyncio.gather(*(task(i) for i in range(1000)))
        primaries = {n.port: named_connections(n) for n in redis_cluster.primary_nodes}
        replicas = {n.port: named_connections(n) for n in redis_cluster.replica_nodes}
        return replies, primaries, replicas

    replies, primaries, replicas = run(registry, body)
    for i, seen in enumerate(replies):
        expected: list[Any] = []
        for j in range(6):
            expected += [f"{i}:{j}".encode(), j + 1]
        assert seen == expected, i
    assert primaries == dict.fromkeys(primaries, 1)  # one shared connection per node
    assert replicas == dict.fromkeys(replicas, 0)


def test_multi_key_commands_in_one_slot_share_and_cross_slot_is_refused_by_name(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(redis_cluster, OPTIONS={"decode_responses": True})})

    async def body() -> tuple[Any, Any, str]:
        r = registry.get_async("c")
        await r.mset({"{u1}a": "1", "{u1}b": "2"})
        same_slot = await r.mget("{u1}a", "{u1}b", "{u1}c")
        union = await r.sunionstore("{u1}dest", ["{u1}s1", "{u1}s2"])
        with pytest.raises(RedisClusterException) as refused:
            await r.sunion("left", "right")
        return same_slot, union, str(refused.value)

    same_slot, union, refused = run(registry, body)
    assert same_slot == ["1", "2", None]
    assert union == 0
    assert refused == "Redis connection 'c': SUNION - all keys must map to the same key slot"


def test_keyless_and_all_node_commands_go_where_redis_py_sends_them(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(redis_cluster)})

    async def body() -> tuple[Any, Any]:
        r = registry.get_async("c")
        await asyncio.gather(*(r.set(f"k{i}", i) for i in range(30)))
        every_primary = await r.keys("k*", target_nodes="primaries")  # merged by redis-py
        return await r.ping(), sorted(every_primary)

    pong, keys = run(registry, body)
    assert pong is True
    assert keys == sorted(f"k{i}".encode() for i in range(30))


def test_reads_go_to_replicas_when_the_connection_asks_for_them(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(redis_cluster, READ_FROM_REPLICAS=True)})
    with redis_cluster.client() as writer:
        for i in range(50):
            writer.set(f"replicated:{i}", i)

    def replicated() -> bool:  # every write on a replica, every replica in the slot map
        with redis_cluster.primary_nodes[0].client() as raw:
            served = raw.execute_command("CLUSTER", "SLOTS")
        listed = all(len(entry) == 4 for entry in served)  # start, end, primary, replica
        keys = 0
        for node in redis_cluster.replica_nodes:
            with node.client() as raw:
                keys += raw.dbsize()
        return listed and keys == 50

    wait_until(replicated, DEADLINE, lambda: "the replicas did not get the 50 keys")

    async def body() -> tuple[list[Any], dict[int, int]]:
        r = registry.get_async("c")
        got = await asyncio.gather(*(r.get(f"replicated:{i}") for i in range(50)))
        return got, {n.port: named_connections(n) for n in redis_cluster.replica_nodes}

    got, replicas = run(registry, body)
    assert got == [str(i).encode() for i in range(50)]
    assert replicas == dict.fromkeys(replicas, 1)  # the reads' shared connections


# -- dedicated connections ---------------------------------------------------------------------


def test_a_waiting_blpop_on_its_own_connection_does_not_hold_up_1000_gets(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(redis_cluster)})
    queue = "{q}list"
    node = owner(redis_cluster, queue)

    async def body() -> tuple[bool, set[Any], int, Any]:
        r = registry.get_async("c")
        await r.set("{q}g", "v")
        blpop = asyncio.create_task(r.blpop([queue], timeout=0))
        await eventually(
            lambda: int(node.client().info("clients")["blocked_clients"]) == 1, "BLPOP waits"
        )
        gets = await asyncio.gather(*(r.get("{q}g") for _ in range(1000)))
        still_waiting = not blpop.done()
        on_node = named_connections(node)
        await r.rpush(queue, "item")
        return still_waiting, set(gets), on_node, await blpop

    still_waiting, gets, on_node, popped = run(registry, body)
    assert still_waiting
    assert gets == {b"v"}
    assert on_node == 2  # the shared connection and the BLPOP's own
    assert popped == [b"{q}list", b"item"] or popped == (b"{q}list", b"item")


def test_watch_transactions_run_on_a_pooled_connection_of_the_slots_node(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(redis_cluster)})
    node = owner(redis_cluster, "{tx}a")

    async def body() -> tuple[list[Any], list[Any], dict[str, Any], int]:
        r = registry.get_async("c")
        async with r.pipeline(transaction=True) as pipe:
            pipe.set("{tx}a", 1).incr("{tx}a").get("{tx}a")
            replies = list(await pipe.execute())

        async def bump(pipe: Any) -> None:
            value = int(await pipe.get("{tx}a"))
            pipe.multi()
            pipe.set("{tx}a", value + 1)

        watched = await r.transaction(bump, "{tx}a")
        return replies, watched, r.multiplexers, named_connections(node)  # type: ignore[union-attr]

    replies, watched, shared, on_node = run(registry, body)
    assert replies == [True, 2, b"2"]
    assert watched == [True]
    assert shared == {}  # no command went on a shared connection
    assert on_node == 1  # a pooled connection of the slot's node


# -- pipelines ----------------------------------------------------------------------------------


def test_a_pipeline_is_split_per_node_on_the_shared_connections(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(redis_cluster)})
    by_node = keys_on_each_node(redis_cluster, 3)
    keys = [k for ks in by_node.values() for k in ks]

    async def body() -> tuple[list[Any], list[Any], dict[int, int], dict[str, int]]:
        r = registry.get_async("c")
        pipe = r.pipeline()
        for key in keys:
            pipe.set(key, key).incr(f"{key}n").get(key)
        pipe.lpush(keys[0], "x")  # WRONGTYPE: an error result, the others stand
        results = await pipe.execute(raise_on_error=False)
        async with async_pipeline(name="c", autocommit=True) as ap:
            futures = [ap.incr(f"{key}n") for key in keys]
        scope = RequestPipeline(registry, "c")
        flushed = [scope.pipeline.incr(f"{key}n") for key in keys]
        await scope.aflush()
        # redis-py splits these per slot into a pipeline pinned to each slot's node.
        split = [await r.exists(*keys), await r.delete(*keys), await r.exists(*keys)]
        counts = {n.port: named_connections(n) for n in redis_cluster.primary_nodes}
        shared = {
            node: mux.connects
            for node, mux in r.multiplexers.items()  # type: ignore[union-attr]
        }
        return (
            results,
            [f.result for f in futures] + [f.result for f in flushed] + split,
            counts,
            shared,
        )

    results, incremented, counts, shared = run(registry, body)
    expected: list[Any] = []
    for key in keys:
        expected += [True, 1, key.encode()]
    assert results[:-1] == expected
    assert "WRONGTYPE" in str(results[-1])
    assert incremented == [2] * len(keys) + [3] * len(keys) + [len(keys), len(keys), 0]
    assert counts == dict.fromkeys(counts, 1)
    assert sorted(shared.values()) == [1, 1, 1]


# -- redirects ----------------------------------------------------------------------------------


def test_ask_during_a_migration_and_moved_after_it_are_followed(
    registry: ConnectionRegistry, own_cluster: ClusterDeployment
) -> None:
    """Two slots move at once: one is used by single commands, the other by pipelines."""
    registry.configure({"c": settings(own_cluster)})
    single, batched = "{moving}", "{batched}"
    moves = [
        Migration(own_cluster, redis.crc.key_slot(k.encode()), owner(own_cluster, k))
        for k in (single, batched)
    ]

    async def body() -> tuple[list[Any], list[Any], list[str]]:
        r = registry.get_async("c")
        await r.mset({f"{single}old": "before"})
        await r.mset({f"{batched}old": "before"})
        for move in moves:
            move.begin()
        seen = [await r.set(f"{single}new", "during")]  # not on the source: ASK, ASKING + SET
        seen += [await r.get(f"{single}new"), await r.get(f"{single}old")]  # ASK; source
        pipe = r.pipeline()
        pipe.set(f"{batched}new", "during").get(f"{batched}new").get(f"{batched}old")
        in_batches = await pipe.execute()
        for move in moves:
            move.move_keys()
            move.finish()
        seen.append(await r.get(f"{single}old"))  # MOVED: the slot map follows
        pipe = r.pipeline()
        pipe.get(f"{batched}old").get(f"{batched}new")  # MOVED inside the batch
        in_batches += await pipe.execute()
        owners = [r.nodes_manager.get_node_from_slot(m.slot).name for m in moves]  # type: ignore[union-attr]
        return seen, in_batches, owners

    seen, in_batches, owners = run(registry, body)
    assert seen == [True, b"during", b"before", b"before"]
    assert in_batches == [True, b"during", b"before", b"before", b"during"]
    assert owners == [f"127.0.0.1:{m.target.port}" for m in moves]
    for move in moves:
        with move.target.client() as raw:
            assert raw.execute_command("CLUSTER", "COUNTKEYSINSLOT", move.slot) == 2


def test_live_resharding_while_tasks_run_gives_no_wrong_reply_and_counts_every_incr(
    registry: ConnectionRegistry, own_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(own_cluster)})
    key = "{resharded}"
    slot = redis.crc.key_slot(key.encode())
    migration = Migration(own_cluster, slot, owner(own_cluster, key))

    async def body() -> tuple[list[int], list[Any], int]:
        r = registry.get_async("c")
        stop = asyncio.Event()
        wrong: list[Any] = []

        async def worker(i: int) -> int:
            done = after = 0
            while after < 5:  # a few rounds once the slot has moved: MOVED is followed
                await r.set(f"{key}v{i}", done)
                got = await r.get(f"{key}v{i}")
                if got != str(done).encode():
                    wrong.append((i, done, got))
                await r.incr(f"{key}n{i}")
                done += 1
                after += stop.is_set()
            return done

        workers = [asyncio.create_task(worker(i)) for i in range(50)]

        def reshard() -> None:
            migration.begin()
            migration.move_keys()
            migration.finish()

        await asyncio.to_thread(reshard)
        stop.set()
        counts = await asyncio.gather(*workers)
        now = r.nodes_manager.get_node_from_slot(slot).name  # type: ignore[union-attr]
        return counts, wrong, now

    counts, wrong, now = run(registry, body)
    assert wrong == []
    with own_cluster.client() as raw:
        assert [int(raw.get(f"{key}n{i}")) for i in range(50)] == counts
    assert now == f"127.0.0.1:{migration.target.port}"


# -- failures -----------------------------------------------------------------------------------


def test_a_lost_node_connection_fails_only_what_was_in_flight_to_it(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    """CLIENT PAUSE WRITE on one primary holds its INCRs in flight; CLIENT KILL drops its
    shared connection: those INCRs may or may not have run (here: not) and are not sent again;
    the other primaries' INCRs are answered."""
    registry.configure({"c": settings(redis_cluster)})
    by_node = keys_on_each_node(redis_cluster)
    victim = redis_cluster.primary_nodes[0]
    (hit,) = by_node[victim.port]
    others = [k for port, ks in by_node.items() if port != victim.port for k in ks]
    admin = victim.client()

    async def body() -> tuple[list[Any], list[Any], Any, Any]:
        r = registry.get_async("c")
        await asyncio.gather(*(r.set(k, 0) for k in [hit, *others]))
        mux = r.multiplexers[f"127.0.0.1:{victim.port}"]  # type: ignore[union-attr]
        admin.execute_command("CLIENT", "PAUSE", 10000, "WRITE")
        try:
            lost = [asyncio.create_task(r.incr(hit)) for _ in range(3)]
            await eventually(lambda: mux.in_flight == 3 and not mux._pending, "3 INCRs written")
            answered = await asyncio.gather(*(r.incr(k) for k in others))
            for c in admin.client_list():
                if c["name"] == NAME:
                    admin.client_kill_filter(_id=c["id"])
            outcomes = await asyncio.gather(*lost, return_exceptions=True)
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
        return outcomes, answered, await r.incr(hit), mux.reconnects

    try:
        outcomes, answered, counter, reconnects = run(registry, body)
    finally:
        admin.close()
    assert [type(o) for o in outcomes] == [ConnectionLostAfterWrite] * 3
    assert str(outcomes[0]) == (
        f"Redis connection 'c': the shared connection to node 127.0.0.1:{victim.port} was lost "
        "(Connection closed by server) after INCRBY was sent; it may or may not have run, and "
        "it was not sent again."
    )
    assert isinstance(outcomes[0], OutcomeUnknown)
    assert answered == [1] * len(others)
    assert counter == 1  # the 3 lost INCRs never ran and were never re-sent
    assert reconnects == 1


def test_a_hung_node_holds_up_only_its_own_commands(
    registry: ConnectionRegistry, own_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(own_cluster, SOCKET_TIMEOUT=None)})
    by_node = keys_on_each_node(own_cluster)
    hung = own_cluster.primary_nodes[1]
    (stuck_key,) = by_node[hung.port]
    others = [k for port, ks in by_node.items() if port != hung.port for k in ks]

    async def body() -> tuple[bool, list[Any], Any]:
        r = registry.get_async("c")
        await asyncio.gather(*(r.set(k, "v") for k in [stuck_key, *others]))
        hung.pause()
        try:
            stuck = asyncio.create_task(r.get(stuck_key))
            answered = await asyncio.gather(*(r.get(k) for k in others * 200))
            waiting = not stuck.done()
        finally:
            hung.resume()
        return waiting, answered, await stuck

    waiting, answered, stuck = run(registry, body)
    assert waiting
    assert set(answered) == {b"v"}
    assert stuck == b"v"


@pytest.fixture
def redis_py_leaks() -> Iterator[None]:
    """redis-py 7.4's slot-map refresh after a node died leaves sockets of its own unclosed
    (plain redis-py too: kill a primary, send it two commands). Requested first, this collects
    them after the other fixtures are torn down, under the test's warning filter, not later."""
    yield
    gc.collect()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_killed_primary_fails_its_commands_and_the_other_nodes_carry_on(
    redis_py_leaks: None, registry: ConnectionRegistry, doomed_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(doomed_cluster, RETRY=0)})
    by_node = keys_on_each_node(doomed_cluster)
    victim = doomed_cluster.primary_nodes[0]
    (dead_key,) = by_node[victim.port]
    others = [k for port, ks in by_node.items() if port != victim.port for k in ks]

    async def body() -> tuple[list[Any], Any, list[Any]]:
        r = registry.get_async("c")
        await asyncio.gather(*(r.set(k, 0) for k in [dead_key, *others]))
        mux = r.multiplexers[f"127.0.0.1:{victim.port}"]  # type: ignore[union-attr]
        with victim.client() as admin:
            admin.execute_command("CLIENT", "PAUSE", 10000, "WRITE")
        in_flight = [asyncio.create_task(r.incr(dead_key)) for _ in range(3)]
        await eventually(lambda: mux.in_flight == 3 and not mux._pending, "3 INCRs written")
        victim.kill()
        outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
        after = await asyncio.gather(*(r.incr(k) for k in others * 10))
        later = await asyncio.gather(r.incr(dead_key), return_exceptions=True)
        return outcomes, after, later

    outcomes, after, later = run(registry, body)
    assert [type(o) for o in outcomes] == [ConnectionLostAfterWrite] * 3
    assert sorted(after) == sorted(list(range(1, 11)) * (len(after) // 10))
    assert isinstance(later[0], redis.exceptions.ConnectionError)
    assert "Redis connection 'c'" in str(later[0])


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # redis-py 7.4's: see redis_py_leaks
def test_a_failover_is_followed_onto_the_promoted_replicas_shared_connection(
    redis_py_leaks: None, registry: ConnectionRegistry, tmp_path: Path
) -> None:
    """A primary dies while idle; its replica takes over. Commands sent meanwhile were never
    written (the connection was refused), so nothing is in doubt; once redis-py's slot map
    names the new primary, the commands ride its shared connection."""
    cluster = ClusterDeployment(tmp_path / "failover")
    cluster.start()
    try:
        registry.configure({"c": settings(cluster)})
        victim = cluster.primary_nodes[0]
        (key,) = keys_on_each_node(cluster)[victim.port]
        with victim.client() as raw:
            heir = cluster.node(int(raw.execute_command("ROLE")[2][0][1]))

        def replicated() -> bool:
            with heir.client() as raw:
                return int(raw.dbsize()) == 1

        def promoted() -> bool:
            with heir.client() as raw:
                return bool(raw.execute_command("ROLE")[0] == b"master")

        async def body() -> tuple[list[Any], list[BaseException], list[str]]:
            r = registry.get_async("c")
            values = [await r.incr(key)]
            await asyncio.to_thread(wait_until, replicated, DEADLINE, lambda: "not replicated")
            victim.kill()
            await asyncio.to_thread(wait_until, promoted, DEADLINE, lambda: "no failover")
            refused: list[BaseException] = []
            deadline = time.monotonic() + DEADLINE
            while len(values) < 2:
                try:
                    values.append(await r.incr(key))
                except (redis.exceptions.RedisError, RedisClusterException) as exc:
                    refused.append(exc)  # the slot map still names the dead primary
                    assert time.monotonic() < deadline, refused
                    await asyncio.sleep(0.05)
            values.append(await r.incr(key))
            return values, refused, sorted(r.multiplexers)  # type: ignore[union-attr]

        values, refused, shared = run(registry, body)
    finally:
        cluster.stop()
    assert values == [1, 2, 3]  # each INCR ran once: none was written to the dead primary
    assert not [str(e) for e in refused if isinstance(e, OutcomeUnknown)]
    assert f"127.0.0.1:{heir.port}" in shared  # made when a command was first sent on it


def test_random_cancellations_never_give_a_wrong_reply(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    """Tasks cut by ``wait_for`` before, during and after their writes on every node's shared
    connection: each key is then unset or its own value, and every later reply is right."""
    registry.configure({"c": settings(redis_cluster)})
    rng = random.Random(22)

    async def body() -> tuple[int, list[Any], list[Any], int]:
        r = registry.get_async("c")

        async def set_then_get(i: int) -> None:
            await r.set(f"cut:{i}", i)
            assert await r.get(f"cut:{i}") == str(i).encode()

        started = time.perf_counter()  # the timeouts scale with an uninterrupted burst
        await asyncio.gather(*(set_then_get(i) for i in range(1000)))
        limit = 3 * (time.perf_counter() - started)
        await asyncio.gather(*(r.delete(f"cut:{i}") for i in range(1000)))

        async def cut(i: int) -> bool:
            try:
                await asyncio.wait_for(set_then_get(i), timeout=rng.uniform(0, limit))
            except TimeoutError:
                return True
            return False

        cancelled = sum(await asyncio.gather(*(cut(i) for i in range(1000))))
        values = await asyncio.gather(*(r.get(f"cut:{i}") for i in range(1000)))
        again = await asyncio.gather(*(r.incr(f"cut:n:{i}") for i in range(1000)))
        reconnects = sum(m.reconnects for m in r.multiplexers.values())  # type: ignore[union-attr]
        return cancelled, values, again, reconnects

    cancelled, values, again, reconnects = run(registry, body)
    assert [v for i, v in enumerate(values) if v not in (None, str(i).encode())] == []
    assert again == [1] * 1000
    assert cancelled > 0  # (the timeouts are drawn so that usually some finish too)
    assert reconnects == 0  # cancellations never cost a shared connection


def test_a_loop_that_ends_without_aclose_leaves_nothing_open(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(redis_cluster)})
    by_node = keys_on_each_node(redis_cluster)

    async def body() -> None:
        r = registry.get_async("c")
        assert await asyncio.gather(*(r.incr(k) for ks in by_node.values() for k in ks)) == [
            1,
            1,
            1,
        ]

    asyncio.run(body())  # no aclose_async(): the loop's shutdown closes the client

    def everything_closed() -> bool:
        for node in redis_cluster.nodes:
            with node.client() as raw:
                if any(c["name"] == NAME for c in raw.client_list()):
                    return False
        return True

    wait_until(everything_closed, DEADLINE, lambda: "a connection was left open")
    registry.close_all()


def unhandled_reply(response: Any, **options: Any) -> Any:
    raise TypeError("a reply this client cannot handle")


def test_a_failure_inside_the_client_after_the_write_is_reply_not_understood(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    """CONTRACT section 13 on the shared connections: the reply was read (the connection stays
    in step), its parsing failed; that command may or may not have run, and is not re-sent."""
    registry.configure({"c": settings(redis_cluster)})

    async def body() -> tuple[str, list[Any], Any, Any]:
        r = registry.get_async("c")
        await r.set("{u}n", 0)
        await r.set("{w}n", 0)
        r.set_response_callback("INCRBY", unhandled_reply)
        for node in r.get_nodes():
            node.response_callbacks["INCRBY"] = unhandled_reply
        with pytest.raises(ReplyNotUnderstood) as single:
            await r.incr("{u}n")
        pipe = r.pipeline()
        pipe.incr("{u}n").get("{u}n").incr("{w}n").get("{w}n")
        replies = await pipe.execute(raise_on_error=False)
        return str(single.value), replies, await r.get("{u}n"), await r.get("{w}n")

    single, replies, u, w = run(registry, body)
    unread = (
        "Redis connection 'c': INCRBY was sent, then its reply could not be read (TypeError: a "
        "reply this client cannot handle); it may or may not have run, and it was not sent again."
    )
    assert single == unread
    assert [str(r) if isinstance(r, Exception) else r for r in replies] == [
        unread,
        b"2",
        unread,
        b"1",
    ]  # only the command whose reply failed: the others' replies are read as usual
    assert (u, w) == (b"2", b"1")  # each INCR ran once


def test_pubsub_runs_on_its_own_connection(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    """redis-py 8's asyncio cluster has pubsub(); 7.x's has none (docs/multiplexing.md says
    so), and there the shared connections carry on beside the AttributeError."""
    registry.configure({"c": settings(redis_cluster)})

    async def body() -> tuple[Any, Any]:
        r = registry.get_async("c")
        await r.set("{p}k", "v")
        if not hasattr(redis.asyncio.RedisCluster, "pubsub"):
            with pytest.raises(AttributeError, match="pubsub"):
                r.pubsub()
            return None, await r.get("{p}k")
        pubsub = r.pubsub()
        try:
            await pubsub.subscribe("news")
            deadline = time.monotonic() + DEADLINE
            message = None
            while message is None and time.monotonic() < deadline:
                await r.publish("news", "hello")  # until the subscription has reached it
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            assert message is not None, "no message"
            return message["data"], await r.get("{p}k")
        finally:
            await pubsub.aclose()

    data, shared = run(registry, body)
    has_pubsub = hasattr(redis.asyncio.RedisCluster, "pubsub")
    assert (data, shared) == (b"hello" if has_pubsub else None, b"v")


# -- health -------------------------------------------------------------------------------------


def test_health_shows_every_node_with_its_shared_connections(
    registry: ConnectionRegistry, redis_cluster: ClusterDeployment
) -> None:
    registry.configure({"c": settings(redis_cluster)})

    async def body() -> tuple[dict[str, Any], str]:
        r = registry.get_async("c")
        await asyncio.gather(*(r.set(f"h{i}", i) for i in range(100)))
        report = registry.health(ping=False)
        return report["connections"][0], render(report)

    entry, text = run(registry, body)
    assert entry["mode"] == "multiplexed"
    assert entry["multiplex"] == {"event_loops": 1, "connected": 3, "in_flight": 0, "reconnects": 0}
    primaries = {f"127.0.0.1:{n.port}" for n in redis_cluster.primary_nodes}
    shown = {n["node"]: n for n in entry["nodes"]}
    assert primaries <= shown.keys()
    for name in primaries:
        assert shown[name]["mode"] == "multiplexed"
        assert shown[name]["multiplex"] == {
            "event_loops": 1,
            "connected": 1,
            "in_flight": 0,
            "reconnects": 0,
        }
    assert "c: multiplexed (asyncio): 0 in flight on 3 shared connection(s)" in text
    for name in primaries:
        assert f"c: node {name}: 0 in flight on 1 shared connection(s), 0 reconnect(s)" in text
