"""MULTIPLEX on Redis Cluster against the pooled cluster clients, side by side in one run.

A 3-primary cluster on loopback (started here, on free ports, stopped at the end). 1,000
asyncio tasks each send 20 commands (SET, GET, INCR on keys of their own, spread over the
slots), all at once. Four ways:

1. redis_conn with ``CLUSTER`` and ``MULTIPLEX``: one shared connection per node;
2. redis_conn's pooled cluster client (``CLUSTER`` only, ``MAX_CONNECTIONS`` 1,000 per node);
3. redis-py's asyncio ``RedisCluster`` (``max_connections`` 1,000 per node);
4. coredis's ``RedisCluster`` (its defaults: a blocking pool per node).

redis-py's asyncio cluster never waits for a free connection: a node whose connections are
all in use fails the command at once (``MaxConnectionsError``). So the two pooled redis-py
ways get as many connections per node as there are tasks; with fewer, most tasks fail.

For each way: commands per second, the 99th percentile of the tasks' durations, the tasks that
failed and the wrong replies (every GET is checked), and the server connections the client
holds per node after the burst (``CLIENT LIST`` on every node). The ways are interleaved round
by round; medians are printed with the ratios of the multiplexed way to the others, and the
targets checked. Then, multiplexed: how long 1,000 GETs take beside a BLPOP waiting on the
cluster client (on its dedicated connection). Needs the ``bench`` extra (coredis)::

    .venv/bin/python bench/bench_multiplex_cluster.py [--rounds 5] [--tasks 1000] [--commands 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
import redis.asyncio.cluster
from redis.utils import HIREDIS_AVAILABLE
from servers import redis_cluster  # type: ignore[import-not-found]

from redis_conn.registry import connections

MUX = "redis_conn CLUSTER + MULTIPLEX"
POOLED = "redis_conn CLUSTER pooled (1000/node)"
PER_NODE = 1000  # connections per node for the pooled redis-py ways
REDIS_PY = "redis-py asyncio RedisCluster"
COREDIS = "coredis RedisCluster"
WAYS = (MUX, POOLED, REDIS_PY, COREDIS)
NAMES = {MUX: "bench-mux", POOLED: "bench-pooled", REDIS_PY: "bench-redis-py", COREDIS: None}
# What topology discovery last sent on the connections it opens: not the commands' ones.
DISCOVERY = {"cluster|slots", "cluster|shards", "cluster|nodes", "command", "command|docs"}


@dataclass
class Result:
    commands_per_s: float
    p99_ms: float
    failed_tasks: int
    wrong_replies: int
    connections_per_node: int  # the most on one node, topology discovery's aside


async def workload(client: Any, index: int, commands: int) -> tuple[float, int]:
    """One task: SET, GET, INCR on keys of its own; (seconds it took, wrong replies)."""
    started = time.perf_counter()
    key, counter = f"bench:{index}", f"bench:n:{index}"
    wrong = 0
    for j in range(commands):
        step = j % 3
        if step == 0:
            await client.set(key, str(j))
        elif step == 1:
            if await client.get(key) != str(j - 1).encode():
                wrong += 1
        else:
            await client.incr(counter)
    return time.perf_counter() - started, wrong


@contextlib.asynccontextmanager
async def open_client(way: str, port: int) -> Any:
    if way in (MUX, POOLED):
        client = connections.get_async("mux" if way == MUX else "pooled")
        try:
            yield client
        finally:
            await connections.aclose_async()
    elif way == REDIS_PY:
        client = redis.asyncio.cluster.RedisCluster(
            host="127.0.0.1", port=port, client_name=NAMES[REDIS_PY], max_connections=PER_NODE
        )
        try:
            yield client
        finally:
            await client.aclose()
    else:
        import coredis

        async with coredis.RedisCluster("127.0.0.1", port) as client:
            yield client


def connections_per_node(ports: list[int], name: str | None) -> int:
    if name is None:  # coredis names no connection: count every client but this probe
        counts = []
        for port in ports:
            with redis.Redis(port=port) as probe:
                counts.append(int(probe.info("clients")["connected_clients"]) - 1)
        return max(counts)
    counts = []
    for port in ports:
        with redis.Redis(port=port) as probe:
            counts.append(
                sum(
                    1
                    for c in probe.client_list()
                    if c["name"] == name and c["cmd"] not in DISCOVERY
                )
            )
    return max(counts)


async def burst(way: str, ports: list[int], tasks: int, commands: int) -> Result:
    async with open_client(way, ports[0]) as client:
        # Connect and warm up before anything is measured.
        await asyncio.gather(*(workload(client, i, 3) for i in range(min(tasks, 200))))
        gc.collect()
        wall = time.perf_counter()
        outcomes = await asyncio.gather(
            *(workload(client, i, commands) for i in range(tasks)), return_exceptions=True
        )
        wall = time.perf_counter() - wall
        held = connections_per_node(ports, NAMES[way])
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    failed = len(outcomes) - len(done)
    if failed:
        first = next(o for o in outcomes if isinstance(o, BaseException))
        print(f"  {way}: {failed} tasks failed, e.g. {type(first).__name__}: {first}")
    return Result(
        commands_per_s=len(done) * commands / wall,
        p99_ms=statistics.quantiles([d for d, _ in done], n=100)[98] * 1000,
        failed_tasks=failed,
        wrong_replies=sum(w for _, w in done),
        connections_per_node=held,
    )


async def blpop_beside_gets(gets: int, ports: list[int]) -> tuple[float, bool]:
    """A BLPOP waits on an empty list while ``gets`` GETs run: how long do the GETs take?"""
    client = connections.get_async("mux")
    try:
        await client.set("beside", "v")
        queue = "bench:empty"
        node = client.get_node_from_key(queue)
        blpop = asyncio.create_task(client.blpop([queue], timeout=0))
        with redis.Redis(port=node.port) as probe:
            while int(probe.info("clients")["blocked_clients"]) < 1:
                await asyncio.sleep(0.001)
        started = time.perf_counter()
        await asyncio.gather(*(client.get("beside") for _ in range(gets)))
        elapsed = time.perf_counter() - started
        still_waiting = not blpop.done()
        await client.rpush(queue, "done")
        await blpop
        return elapsed, still_waiting
    finally:
        await connections.aclose_async()


def summarize(results: list[Result]) -> Result:
    return Result(
        commands_per_s=statistics.median(r.commands_per_s for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        failed_tasks=sum(r.failed_tasks for r in results),
        wrong_replies=sum(r.wrong_replies for r in results),
        connections_per_node=max(r.connections_per_node for r in results),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs per way (default 5)")
    parser.add_argument("--tasks", type=int, default=1000, help="concurrent tasks (default 1000)")
    parser.add_argument("--commands", type=int, default=20, help="commands per task (20)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()

    runs: dict[str, list[Result]] = {way: [] for way in WAYS}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-mux-cluster-")))
        ports = stack.enter_context(redis_cluster(tmp))
        url = f"redis://127.0.0.1:{ports[0]}"
        connections.configure(
            {
                "mux": {
                    "URL": url,
                    "CLUSTER": True,
                    "MULTIPLEX": True,
                    "OPTIONS": {"client_name": NAMES[MUX]},
                },
                "pooled": {
                    "URL": url,
                    "CLUSTER": True,
                    "MAX_CONNECTIONS": PER_NODE,
                    "OPTIONS": {"client_name": NAMES[POOLED]},
                },
            }
        )
        stack.callback(connections.close_all)
        for _ in range(args.rounds):
            for way in WAYS:
                with asyncio.Runner() as runner:
                    runs[way].append(runner.run(burst(way, ports, args.tasks, args.commands)))
        with asyncio.Runner() as runner:
            elapsed, waiting = runner.run(blpop_beside_gets(args.tasks, ports))

    table = {way: summarize(rs) for way, rs in runs.items()}
    installed = ", ".join(
        f"{name} {version(name)}" for name in ("redis", "coredis", "hiredis") if _installed(name)
    )
    parser_name = "hiredis" if HIREDIS_AVAILABLE else "pure Python"
    print(
        f"cluster multiplexing benchmark (Python {platform.python_version()}, {installed}, "
        f"{parser_name} parser, {os.cpu_count()} CPUs)"
    )
    print(
        f"3 primaries on loopback; {args.tasks:,} tasks x {args.commands} commands "
        f"(SET/GET/INCR); median of {args.rounds} rounds, ways interleaved"
    )
    print()
    print(
        f"{'way':<38}{'commands/s':>12}{'task p99 ms':>13}{'conns/node':>12}"
        f"{'failed':>8}{'wrong':>7}"
    )
    for way, r in table.items():
        print(
            f"{way:<38}{r.commands_per_s:>12,.0f}{r.p99_ms:>13.1f}{r.connections_per_node:>12}"
            f"{r.failed_tasks:>8}{r.wrong_replies:>7}"
        )
    mux = table[MUX]
    print("multiplexed vs:")
    for way in WAYS[1:]:
        r = table[way]
        print(
            f"  {way:<36}{mux.commands_per_s / r.commands_per_s:>6.2f}x commands/s, "
            f"{mux.p99_ms / r.p99_ms:.2f}x task p99"
        )
    print(
        f"\n{args.tasks:,} GETs beside a BLPOP waiting on the cluster client: "
        f"{elapsed * 1000:.0f} ms (BLPOP still waiting: {'yes' if waiting else 'no'})"
    )
    speed_py = mux.commands_per_s / table[REDIS_PY].commands_per_s
    speed_co = mux.commands_per_s / table[COREDIS].commands_per_s
    targets = [
        (f">= 3x redis-py's asyncio RedisCluster commands/s ({speed_py:.2f}x)", speed_py >= 3),
        (f">= 3x coredis's RedisCluster commands/s ({speed_co:.2f}x)", speed_co >= 3),
        (
            f"<= 1 connection per node, discovery aside ({mux.connections_per_node})",
            mux.connections_per_node <= 1,
        ),
        (f"0 wrong replies ({mux.wrong_replies})", mux.wrong_replies == 0),
        (f"0 failed tasks ({mux.failed_tasks})", mux.failed_tasks == 0),
        (f"GETs beside a BLPOP < 200 ms ({elapsed * 1000:.0f} ms)", elapsed < 0.2 and waiting),
    ]
    print()
    for label, met in targets:
        print(f"{'PASS' if met else 'FAIL'}  {label}")
    return 0 if (not args.check or all(met for _, met in targets)) else 1


def _installed(name: str) -> bool:
    try:
        version(name)
    except Exception:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
