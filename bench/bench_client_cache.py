"""CLIENT_CACHE against no cache, side by side in one run, against a real server.

1. A hot-key GET, one caller in a loop: ``get_redis`` with and without ``CLIENT_CACHE``;
   redis-py's own ``redis.Redis`` beside them (its server-assisted cache needs Redis >= 7.4
   and RESP3; it is measured only when the server allows it).
2. The same through the asyncio clients: MULTIPLEX and pooled, with and without.
3. The Django cache's ``get`` (sync) and ``aget`` (MULTIPLEX), with and without.
4. Invalidation delay: another client SETs the key; how long until the cached reader sees the
   new value (the reader spins on GET, as a busy process would), percentiles of 2,000.

Each figure is the median of ``--rounds`` interleaved rounds; ratios are "with / without".
The script starts its own redis-server on a free port (never 6379) and stops it at the end::

    .venv/bin/python bench/bench_client_cache.py [--rounds 5] [--reads 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
from servers import redis_server  # type: ignore[import-not-found]

from redis_conn import ConnectionRegistry


def per_call(call: Callable[[], Any], count: int) -> float:
    """Microseconds per call of ``call`` (after 1,000 warm-up calls)."""
    for _ in range(1000):
        call()
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


def per_await(loop: asyncio.AbstractEventLoop, make: Callable[[], Any], count: int) -> float:
    async def run(times: int) -> None:
        for _ in range(times):
            await make()

    loop.run_until_complete(run(1000))
    started = time.perf_counter()
    loop.run_until_complete(run(count))
    return (time.perf_counter() - started) / count * 1e6


def wait_listening(registry: ConnectionRegistry, *names: str) -> None:
    deadline = time.monotonic() + 10
    for name in names:
        cache = registry.client_cache(name)
        assert cache is not None
        while not cache.listening:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: the client cache never started listening")
            time.sleep(0.01)


def invalidation_delays(reader: Any, writer: redis.Redis, samples: int) -> list[float]:
    """Milliseconds from another client's SET returning to the cached reader seeing it."""
    delays = []
    for i in range(samples):
        value = str(i).encode()
        while reader.get("hot") == value:  # pragma: no cover (never: new value each time)
            pass
        for _ in range(3):  # a local copy is there again
            reader.get("hot")
        writer.set("hot", value)
        written = time.perf_counter()
        while reader.get("hot") != value:
            pass
        delays.append((time.perf_counter() - written) * 1e3)
    return delays


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reads", type=int, default=100_000, help="Cached reads per round.")
    parser.add_argument("--server-reads", type=int, default=5_000, help="Uncached, per round.")
    parser.add_argument("--samples", type=int, default=2_000, help="Invalidation delays.")
    args = parser.parse_args()

    import django
    from django.conf import settings

    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as port:
        url = f"redis://127.0.0.1:{port}/0"
        if True:
            base = {"URL": url}
            cached = {"URL": url, "CLIENT_CACHE": True}
            registry = ConnectionRegistry(
                {
                    "plain": base,
                    "cached": cached,
                    "mux": {**base, "MULTIPLEX": True},
                    "mux-cached": {**cached, "MULTIPLEX": True},
                }
            )
            settings.configure(
                REDIS_CONNECTIONS={"plain": base, "cached": cached},
                CACHES={
                    "plain": {"BACKEND": "redis_conn.django.cache.RedisCache", "LOCATION": "plain"},
                    "cached": {
                        "BACKEND": "redis_conn.django.cache.RedisCache",
                        "LOCATION": "cached",
                    },
                },
                INSTALLED_APPS=[],
            )
            django.setup()
            from django.core.cache import caches

            raw = redis.Redis.from_url(url)
            raw.set("hot", "value")
            caches["plain"].set("hot", "value")
            wait_listening(registry, "cached", "mux-cached")
            results: dict[str, list[float]] = {}

            def note(label: str, micros: float) -> None:
                results.setdefault(label, []).append(micros)

            loop = asyncio.new_event_loop()

            async def clients() -> tuple[Any, Any, Any, Any]:
                return (
                    registry.get_async("mux"),
                    registry.get_async("mux-cached"),
                    registry.get_async("plain"),
                    registry.get_async("cached"),
                )

            mux, mux_cached, pooled, pooled_cached = loop.run_until_complete(clients())
            sync_plain, sync_cached = registry.get("plain"), registry.get("cached")
            django_plain, django_cached = caches["plain"], caches["cached"]
            django_cached.get("hot")
            for _ in range(args.rounds):
                note("sync get_redis", per_call(lambda: sync_plain.get("hot"), args.server_reads))
                note(
                    "sync get_redis CLIENT_CACHE",
                    per_call(lambda: sync_cached.get("hot"), args.reads),
                )
                note("redis-py redis.Redis", per_call(lambda: raw.get("hot"), args.server_reads))
                note(
                    "asyncio MULTIPLEX", per_await(loop, lambda: mux.get("hot"), args.server_reads)
                )
                note(
                    "asyncio MULTIPLEX CLIENT_CACHE",
                    per_await(loop, lambda: mux_cached.get("hot"), args.reads),
                )
                note(
                    "asyncio pooled", per_await(loop, lambda: pooled.get("hot"), args.server_reads)
                )
                note(
                    "asyncio pooled CLIENT_CACHE",
                    per_await(loop, lambda: pooled_cached.get("hot"), args.reads),
                )
                note(
                    "Django cache.get", per_call(lambda: django_plain.get("hot"), args.server_reads)
                )
                note(
                    "Django cache.get CLIENT_CACHE",
                    per_call(lambda: django_cached.get("hot"), args.reads),
                )
            delays = invalidation_delays(sync_cached, raw, args.samples)
            loop.run_until_complete(registry.aclose_async())
            loop.close()
            registry.close_all()

    server = "redis-server " + os.popen("redis-server --version").read().split()[2][2:]
    print(
        f"CLIENT_CACHE, hot-key reads ({server}, Python {sys.version.split()[0]}, "
        f"redis-py {version('redis')}, Django {django.get_version()}; "
        f"median of {args.rounds} rounds)\n"
    )
    print(f"{'way':<34}{'us/read':>10}{'with cache':>12}{'x faster':>10}")
    pairs = [
        ("sync get_redis", "sync get_redis CLIENT_CACHE", 20),
        ("asyncio MULTIPLEX", "asyncio MULTIPLEX CLIENT_CACHE", 10),
        ("asyncio pooled", "asyncio pooled CLIENT_CACHE", None),
        ("Django cache.get", "Django cache.get CLIENT_CACHE", None),
    ]
    verdicts = []
    for without, with_cache, target in pairs:
        slow = statistics.median(results[without])
        fast = statistics.median(results[with_cache])
        print(f"{without:<34}{slow:>10.2f}{fast:>12.2f}{slow / fast:>10.1f}")
        if target is not None:
            verdicts.append(
                (slow / fast >= target, f"{with_cache} >= {target}x ({slow / fast:.1f}x)")
            )
    plain_py = statistics.median(results["redis-py redis.Redis"])
    print(f"{'redis-py redis.Redis (no cache)':<34}{plain_py:>10.2f}")
    p50, p99, worst = percentile(delays, 0.5), percentile(delays, 0.99), max(delays)
    print(
        f"\ninvalidation delay (another client's SET -> the cached reader sees it), "
        f"{len(delays)} samples: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {worst:.3f} ms"
    )
    verdicts.append((p99 <= 2.0, f"invalidation delay p99 <= 2 ms ({p99:.3f} ms)"))
    print()
    for ok, text in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
