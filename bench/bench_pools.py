"""Pools under contention, and the cost of one command: redis_conn against redis-py, one run.

1. **Fair waiting** (CONTRACT section 6): 32 threads x 2,000 GETs on a pool of 8, with each
   library's waiting limit. redis_conn waits up to POOL_TIMEOUT (5 s by default) and hands a
   freed connection to the longest waiting thread; redis-py's ``BlockingConnectionPool``
   lets any thread take it, which starves some waiters (its default timeout is 20 s, shown
   too, and at 5 s, our default). Printed: GETs/s, how many GETs failed because no connection
   came in time, and the longest single GET (waiting included).
2. **The sync hot path**: client CPU per GET through ``get_redis(name)`` against a plain
   ``redis.Redis`` with the same connection options, one thread, the server on loopback.

The script starts its own redis-server on a free port::

    .venv/bin/python bench/bench_pools.py [--threads 32] [--gets 2000] [--check]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from servers import redis_server  # type: ignore[import-not-found]

from redis_conn import ConnectionRegistry

OPTIONS = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0, "health_check_interval": 30}


@dataclass
class Contention:
    label: str
    gets_per_second: float
    failed: int
    longest_ms: float
    p99_ms: float


def contend(label: str, client: Any, threads: int, gets: int) -> Contention:
    waits: list[list[float]] = [[] for _ in range(threads)]
    failed = [0] * threads
    start = threading.Barrier(threads + 1)

    def worker(number: int) -> None:
        mine, get, clock = waits[number], client.get, time.perf_counter
        start.wait()
        for _ in range(gets):
            began = clock()
            try:
                get("k")
            except redis.ConnectionError:  # PoolExhausted, or redis-py's "No connection available."
                failed[number] += 1
            mine.append(clock() - began)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    every = sorted(w for mine in waits for w in mine)
    return Contention(
        label,
        gets_per_second=len(every) / elapsed,
        failed=sum(failed),
        longest_ms=every[-1] * 1000,
        p99_ms=every[int(len(every) * 0.99)] * 1000,
    )


def cpu_per_get(client: Any, rounds: int = 7, gets: int = 20_000) -> float:
    """Median client CPU microseconds per GET over ``rounds`` rounds."""
    for _ in range(2_000):
        client.get("k")
    samples = []
    for _ in range(rounds):
        began = time.process_time()
        for _ in range(gets):
            client.get("k")
        samples.append((time.process_time() - began) / gets * 1e6)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--gets", type=int, default=2_000, help="GETs per thread")
    parser.add_argument("--max-connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per pool")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as port:
        url = f"redis://127.0.0.1:{port}/0"
        redis.Redis(port=port).set("k", "v" * 100)
        limit = args.max_connections
        registry = ConnectionRegistry({"bench": {"URL": url, "MAX_CONNECTIONS": limit}})

        def redis_py(timeout: float) -> redis.Redis:
            pool = redis.BlockingConnectionPool(
                host="127.0.0.1", port=port, max_connections=limit, timeout=timeout, **OPTIONS
            )
            return redis.Redis(connection_pool=pool)

        variants: list[tuple[str, Callable[[], Any]]] = [
            ("redis_conn, POOL_TIMEOUT 5 s", lambda: registry.get("bench")),
            ("redis-py Blocking, timeout 5 s", lambda: redis_py(5)),
            ("redis-py Blocking, timeout 20 s", lambda: redis_py(20)),
        ]
        rounds: dict[str, list[Contention]] = {label: [] for label, _ in variants}
        for _ in range(args.rounds):  # interleaved: each round runs every pool once
            for label, make in variants:
                rounds[label].append(contend(label, make(), args.threads, args.gets))
        results = [
            Contention(
                label,
                gets_per_second=statistics.median(r.gets_per_second for r in runs),
                failed=sum(r.failed for r in runs),
                longest_ms=max(r.longest_ms for r in runs),
                p99_ms=statistics.median(r.p99_ms for r in runs),
            )
            for label, runs in rounds.items()
        ]

        plain = redis.Redis(host="127.0.0.1", port=port, **OPTIONS)
        ours = registry.get("bench")
        # Interleaved, so that both see the same machine.
        cpu = {"redis-py": [], "redis_conn": []}  # type: dict[str, list[float]]
        for _ in range(3):
            cpu["redis-py"].append(cpu_per_get(plain))
            cpu["redis_conn"].append(cpu_per_get(ours))
        registry.close_all()

    print(
        f"redis_conn pool benchmark (Python {platform.python_version()}, "
        f"redis-py {redis.__version__})"
    )
    print(
        f"\n{args.threads} threads x {args.gets} GETs on a pool of {limit}, {args.rounds} "
        "interleaved rounds (GET time includes waiting for a connection)"
    )
    print("GETs/s and p99: median of the rounds; failed: all rounds; longest: of all rounds")
    print(f"{'pool':34s} {'GETs/s':>9s} {'failed':>7s} {'longest ms':>11s} {'p99 ms':>8s}")
    for r in results:
        print(
            f"{r.label:34s} {r.gets_per_second:9.0f} {r.failed:7d} "
            f"{r.longest_ms:11.1f} {r.p99_ms:8.2f}"
        )
    ours_cpu, theirs_cpu = min(cpu["redis_conn"]), min(cpu["redis-py"])
    print("\nclient CPU per GET, one thread (best of 3 medians of 7 x 20,000)")
    print(f"{'redis-py Redis, same options':34s} {theirs_cpu:6.2f} us  1.00x")
    print(f"{'redis_conn get_redis()':34s} {ours_cpu:6.2f} us  {ours_cpu / theirs_cpu:.2f}x")

    mine, blocking5 = results[0], results[1]
    checks = [
        (mine.failed == 0, f"0 GETs failed waiting for a connection ({mine.failed})"),
        (mine.longest_ms < 1000, f"longest single GET under 1 s ({mine.longest_ms:.0f} ms)"),
        (
            mine.gets_per_second >= blocking5.gets_per_second,
            f"throughput >= redis-py Blocking ({mine.gets_per_second:.0f} vs "
            f"{blocking5.gets_per_second:.0f} GETs/s)",
        ),
        (
            ours_cpu <= theirs_cpu * 1.05,
            f"CPU per GET <= 1.05x redis-py ({ours_cpu / theirs_cpu:.2f}x)",
        ),
    ]
    print()
    for ok, text in checks:
        print(("PASS  " if ok else "MISS  ") + text)
    return 1 if args.check and not all(ok for ok, _ in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
