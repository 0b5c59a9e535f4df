"""Multiplexed asyncio connections against pools, side by side in one run, against a real server.

1,000 asyncio tasks each send 20 commands (SET, GET, INCR on keys of their own), all at once,
straight to one redis-server on loopback (no proxy: a proxy's own CPU would distort). Four ways:

1. redis_conn with ``MULTIPLEX: True``: one shared connection per event loop;
2. redis_conn pooled (``MAX_CONNECTIONS`` 50);
3. redis-py's asyncio client on ``BlockingConnectionPool(max_connections=50)``;
4. coredis (its default pool, ``max_connections`` 50).

For each way: commands per second, the 99th percentile of the tasks' durations, the peak of
server connections (sampled from ``INFO clients`` by another process, every 2 ms), and client
CPU per command (process CPU time of the burst / commands). The ways are interleaved run by run;
medians are printed with the ratios of the multiplexed way to the others, and the targets
checked. Then, multiplexed: how long 1,000 GETs take beside a BLPOP waiting 2 s (on its
dedicated connection), and 2,000 tasks under random ``wait_for`` timeouts whose keys are read
back (wrong replies: 0). With uvloop installed everything is repeated on uvloop. A chart is
drawn.

The script starts its own redis-server on a free port (never 6379) and stops it at the end.
Needs the ``bench`` extra (coredis, uvloop, matplotlib)::

    .venv/bin/python bench/bench_multiplex.py [--rounds 5] [--tasks 1000] [--commands 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
from redis.utils import HIREDIS_AVAILABLE
from servers import redis_server, stop  # type: ignore[import-not-found]

from redis_conn.registry import connections

HERE = Path(__file__).resolve().parent
CHART = HERE.parent / "docs" / "_static" / "bench_multiplex.png"

MUX = "redis_conn MULTIPLEX"
POOLED = "redis_conn pooled (50)"
REDIS_PY = "redis-py BlockingConnectionPool(50)"
COREDIS = "coredis (max_connections 50)"
WAYS = (MUX, POOLED, REDIS_PY, COREDIS)

# Another process polls INFO clients, so that its CPU is not the client's.
SAMPLER = r"""
import select, sys, redis
r = redis.Redis(port=int(sys.argv[1]))
peak = 0
while True:
    peak = max(peak, int(r.info("clients")["connected_clients"]) - 1)  # not itself
    if select.select([sys.stdin], [], [], 0.002)[0]:
        if not sys.stdin.readline():
            break
        print(peak, flush=True)
        peak = 0
"""


# -- processes ---------------------------------------------------------------------------------


class PeakConnections:
    """The most connections the server had between two reads (a sampler subprocess)."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SAMPLER, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def read(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        stop(self.proc)


# -- the four ways -----------------------------------------------------------------------------

Op = Callable[[Any, int, int], Awaitable[None]]


async def workload(client: Any, index: int, commands: int) -> float:
    """One task: SET, GET, INCR on keys of its own; returns how long it took (seconds)."""
    started = time.perf_counter()
    key, counter = f"bench:{index}", f"bench:n:{index}"
    for j in range(commands):
        step = j % 3
        if step == 0:
            await client.set(key, j)
        elif step == 1:
            got = await client.get(key)
            if got != str(j - 1).encode():
                raise AssertionError(f"task {index} read {got!r} for {key}")
        else:
            await client.incr(counter)
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def open_client(way: str, port: int) -> Any:
    if way in (MUX, POOLED):
        client = connections.get_async("mux" if way == MUX else "pooled")
        try:
            yield client
        finally:
            await connections.aclose_async()
    elif way == REDIS_PY:
        pool = redis.asyncio.BlockingConnectionPool(
            host="127.0.0.1", port=port, max_connections=50, timeout=30
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        try:
            yield client
        finally:
            await client.aclose()
            await pool.aclose()
    else:
        import coredis

        async with coredis.Redis("127.0.0.1", port, max_connections=50) as client:
            yield client


@dataclass
class Result:
    commands_per_s: float
    p99_ms: float
    peak_connections: int
    cpu_us_per_command: float


async def burst(way: str, port: int, tasks: int, commands: int, peak: PeakConnections) -> Result:
    async with open_client(way, port) as client:
        # Connect and warm up (pools open their connections) before anything is measured.
        await asyncio.gather(*(workload(client, i, 3) for i in range(min(tasks, 200))))
        gc.collect()
        peak.read()  # reset the peak
        cpu, wall = time.process_time(), time.perf_counter()
        durations = await asyncio.gather(*(workload(client, i, commands) for i in range(tasks)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server_peak = peak.read()
    total = tasks * commands
    return Result(
        commands_per_s=total / wall,
        p99_ms=statistics.quantiles(durations, n=100)[98] * 1000,
        peak_connections=server_peak,
        cpu_us_per_command=cpu / total * 1e6,
    )


async def blpop_beside_gets(gets: int) -> tuple[float, bool]:
    """A BLPOP waits 2 s on an empty list while ``gets`` GETs run: how long do the GETs take?"""
    client = connections.get_async("mux")
    try:
        await client.set("beside", "v")
        blpop = asyncio.create_task(client.blpop(["bench:empty"], timeout=2))
        while client.connection_pool.usage().in_use < 1:  # the BLPOP has its connection
            await asyncio.sleep(0.001)
        started = time.perf_counter()
        await asyncio.gather(*(client.get("beside") for _ in range(gets)))
        elapsed = time.perf_counter() - started
        still_waiting = not blpop.done()
        await blpop
        return elapsed, still_waiting
    finally:
        await connections.aclose_async()


async def cancellations(tasks: int, seed: int) -> tuple[int, int]:
    """``tasks`` tasks SET then GET their own key under a random ``wait_for`` timeout; then
    every key is read back. Returns (cancelled, wrong replies)."""
    import random

    rng = random.Random(seed)
    client = connections.get_async("mux")
    wrong = cancelled = 0

    async def set_then_get(i: int) -> None:
        nonlocal wrong
        await client.set(f"cancel:{i}", i)
        if await client.get(f"cancel:{i}") != str(i).encode():
            wrong += 1

    async def one(i: int, limit: float) -> None:
        nonlocal cancelled
        try:
            await asyncio.wait_for(set_then_get(i), timeout=rng.uniform(0, limit))
        except TimeoutError:
            cancelled += 1

    try:
        # Timeouts up to 3x an uninterrupted burst: cut before, during and after writing.
        started = time.perf_counter()
        await asyncio.gather(*(asyncio.wait_for(set_then_get(i), 60) for i in range(tasks)))
        limit = 3 * (time.perf_counter() - started)
        await client.delete(*(f"cancel:{i}" for i in range(tasks)))
        await asyncio.gather(*(one(i, limit) for i in range(tasks)))
        values = await asyncio.gather(*(client.get(f"cancel:{i}") for i in range(tasks)))
        wrong += sum(1 for i, v in enumerate(values) if v not in (None, str(i).encode()))
        return cancelled, wrong
    finally:
        await connections.aclose_async()


def loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    try:
        import uvloop
    except ImportError:
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories


# -- report ------------------------------------------------------------------------------------


def summarize(results: list[Result]) -> Result:
    return Result(
        commands_per_s=statistics.median(r.commands_per_s for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        peak_connections=max(r.peak_connections for r in results),
        cpu_us_per_command=statistics.median(r.cpu_us_per_command for r in results),
    )


def print_table(loop: str, table: dict[str, Result]) -> list[tuple[str, bool]]:
    mux = table[MUX]
    print(f"{loop} event loop")
    print(f"{'way':<38}{'commands/s':>12}{'task p99 ms':>13}{'server conns':>14}{'CPU us/cmd':>12}")
    for way, r in table.items():
        print(
            f"{way:<38}{r.commands_per_s:>12,.0f}{r.p99_ms:>13.1f}{r.peak_connections:>14}"
            f"{r.cpu_us_per_command:>12.1f}"
        )
    print("multiplexed vs:")
    for way in WAYS[1:]:
        r = table[way]
        print(
            f"  {way:<36}{mux.commands_per_s / r.commands_per_s:>6.2f}x commands/s, "
            f"{mux.cpu_us_per_command / r.cpu_us_per_command:.2f}x CPU per command, "
            f"{mux.p99_ms / r.p99_ms:.2f}x task p99"
        )
    redis_py, coredis = table[REDIS_PY], table[COREDIS]
    speed_py = mux.commands_per_s / redis_py.commands_per_s
    speed_co = mux.commands_per_s / coredis.commands_per_s
    cpu_py = mux.cpu_us_per_command / redis_py.cpu_us_per_command
    return [
        (f"{loop}: >= 4x redis-py's commands/s ({speed_py:.2f}x)", speed_py >= 4),
        (f"{loop}: >= 4x coredis's commands/s ({speed_co:.2f}x)", speed_co >= 4),
        (f"{loop}: <= 2 server connections ({mux.peak_connections})", mux.peak_connections <= 2),
        (f"{loop}: CPU per command <= 0.25x redis-py's ({cpu_py:.2f}x)", cpu_py <= 0.25),
    ]


def draw_chart(tables: dict[str, dict[str, Result]], tasks: int, commands: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    loops = list(tables)
    width = 0.8 / len(loops)
    colors = {"asyncio": "#d62728", "uvloop": "#1f77b4"}
    labels = ["MULTIPLEX", "redis_conn\npooled 50", "redis-py\nBlocking 50", "coredis\n50"]
    for n, loop in enumerate(loops):
        xs = [i + (n - (len(loops) - 1) / 2) * width for i in range(len(WAYS))]
        speeds = [tables[loop][w].commands_per_s / 1000 for w in WAYS]
        cpus = [tables[loop][w].cpu_us_per_command for w in WAYS]
        left.bar(xs, speeds, width, label=loop, color=colors.get(loop))
        right.bar(xs, cpus, width, label=loop, color=colors.get(loop))
        for x, value in zip(xs, speeds, strict=True):
            left.text(x, value, f"{value:.0f}k", ha="center", va="bottom", fontsize=8)
        for x, value in zip(xs, cpus, strict=True):
            right.text(x, value, f"{value:.0f}", ha="center", va="bottom", fontsize=8)
    for axis in (left, right):
        axis.set_xticks(range(len(WAYS)), labels)
        axis.legend()
    left.set_ylabel("thousand commands per second (median)")
    left.set_title(f"{tasks:,} tasks x {commands} commands, loopback")
    right.set_ylabel("client CPU microseconds per command (median)")
    right.set_title("client CPU per command (lower is better)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs per way (default 5)")
    parser.add_argument("--tasks", type=int, default=1000, help="concurrent tasks (default 1000)")
    parser.add_argument("--commands", type=int, default=20, help="commands per task (20)")
    parser.add_argument("--chart", type=Path, default=CHART, help="where to draw the PNG")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()

    factories = loop_factories()
    runs: dict[str, dict[str, list[Result]]] = {
        loop: {way: [] for way in WAYS} for loop in factories
    }
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-multiplex-")))
        port = stack.enter_context(redis_server(tmp, "--maxclients", "10000"))
        url = f"redis://127.0.0.1:{port}/0"
        connections.configure(
            {
                "mux": {"URL": url, "MULTIPLEX": True},
                "pooled": {"URL": url, "MAX_CONNECTIONS": 50, "POOL_TIMEOUT": 30},
            }
        )
        stack.callback(connections.close_all)
        peak = PeakConnections(port)
        stack.callback(peak.close)
        for _ in range(args.rounds):
            for loop, factory in factories.items():
                for way in WAYS:
                    with asyncio.Runner(loop_factory=factory) as runner:
                        result = runner.run(burst(way, port, args.tasks, args.commands, peak))
                    runs[loop][way].append(result)
        extras: dict[str, tuple[tuple[float, bool], tuple[int, int]]] = {}
        for loop, factory in factories.items():
            with asyncio.Runner(loop_factory=factory) as runner:
                beside = runner.run(blpop_beside_gets(args.tasks))
                cancelled = runner.run(cancellations(2000, seed=len(extras)))
            extras[loop] = (beside, cancelled)

    tables = {
        loop: {way: summarize(rs) for way, rs in by_way.items()} for loop, by_way in runs.items()
    }
    installed = ", ".join(
        f"{name} {version(name)}"
        for name in ("redis", "coredis", "hiredis", "uvloop")
        if _installed(name)
    )
    parser_name = "hiredis" if HIREDIS_AVAILABLE else "pure Python"
    print(
        f"multiplexing benchmark (Python {platform.python_version()}, {installed}, "
        f"{parser_name} parser, {os.cpu_count()} CPUs)"
    )
    print(
        f"{args.tasks:,} tasks x {args.commands} commands (SET/GET/INCR), loopback, no proxy; "
        f"median of {args.rounds} rounds, ways interleaved"
    )
    targets: list[tuple[str, bool]] = []
    for loop, table in tables.items():
        print()
        targets += print_table(loop, table)
    print()
    for loop, ((elapsed, waiting), (cancelled, wrong)) in extras.items():
        print(
            f"{loop}: {args.tasks:,} GETs beside a BLPOP waiting 2 s: {elapsed * 1000:.0f} ms "
            f"(BLPOP still waiting: {'yes' if waiting else 'no'}); 2,000 tasks under random "
            f"wait_for timeouts: {cancelled} cancelled, {wrong} wrong replies"
        )
        targets.append(
            (f"{loop}: GETs beside a BLPOP < 200 ms ({elapsed * 1000:.0f} ms)", elapsed < 0.2)
        )
        targets.append((f"{loop}: 0 wrong replies after cancellations ({wrong})", wrong == 0))
    print()
    for label, met in targets:
        print(f"{'PASS' if met else 'FAIL'}  {label}")
    draw_chart(tables, args.tasks, args.commands, args.chart)
    print(f"\nchart: {args.chart}")
    return 0 if (not args.check or all(met for _, met in targets)) else 1


def _installed(name: str) -> bool:
    try:
        version(name)
    except Exception:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
