"""How fast is a redis_conn pipeline? Side by side, in one run, against real servers.

A "request" is 40 commands over 2 backends, each backend behind a latency proxy (2 ms per round
trip by default, like a server on another host). It is sent five ways:

1. plain redis-py calls, one round trip per command;
2. redpipe, without threads and with them (one new thread per backend per execute);
3. a redis_conn pipeline (one batch per backend, the backends concurrently);
4. the floor: one raw redis-py pipeline carrying all 40 commands to one backend.

Then the client CPU time of 10,000 pipelined commands, redis_conn against a raw redis-py
pipeline, straight to the server. Medians and ratios are printed, and a chart is drawn.

The script starts its own redis-server processes on free ports (never 6379) and proxies, and
stops them at the end. Needs the ``bench`` extra (redpipe, matplotlib)::

    .venv/bin/python bench/bench_pipeline.py [--runs 100] [--delay-ms 2] [--check]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
import redpipe
from servers import redis_server, stop  # type: ignore[import-not-found]

from redis_conn.pipeline import pipeline
from redis_conn.registry import connections

HERE = Path(__file__).resolve().parent
CHART = HERE.parent / "docs" / "_static" / "bench_pipeline.png"
CPU_COMMANDS = 10_000

# 40 commands, 20 per backend, interleaved as a view would issue them.
REQUEST: list[tuple[str, str, tuple[Any, ...]]] = [
    (backend, method, args)
    for j in range(5)
    for backend in ("a", "b")
    for method, args in (
        ("set", (f"user:{j}", "x" * 32)),
        ("get", (f"user:{j}",)),
        ("incr", (f"hits:{j}",)),
        ("hset", (f"profile:{j}", "seen", "1")),
    )
]


# -- processes ---------------------------------------------------------------------------------


@contextlib.contextmanager
def latency_proxy(port: int, delay_ms: float) -> Iterator[int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "latency_proxy.py"),
            "--upstream",
            f"127.0.0.1:{port}",
            "--delay-ms",
            str(delay_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        stop(proc)


# -- the five ways to send a request -------------------------------------------------------


def plain_calls(clients: dict[str, redis.Redis]) -> Callable[[], None]:
    def run() -> None:
        for backend, method, args in REQUEST:
            getattr(clients[backend], method)(*args)

    return run


def redpipe_request(threads: bool) -> Callable[[], None]:
    def run() -> None:
        # redpipe's switch is process-wide; set it for each run since both variants alternate.
        if threads:
            redpipe.enable_threads()
        else:
            redpipe.disable_threads()
        with (
            redpipe.pipeline(name="a", autoexec=True) as root,
            redpipe.pipeline(root, name="b", autoexec=True) as other,
        ):
            for backend, method, args in REQUEST:
                getattr(root if backend == "a" else other, method)(*args)

    return run


def redis_conn_request() -> None:
    with pipeline(name="a") as p:
        other = p["b"]
        for backend, method, args in REQUEST:
            getattr(p if backend == "a" else other, method)(*args)
        p.execute()


def floor_request(client: redis.Redis) -> Callable[[], None]:
    def run() -> None:
        pipe = client.pipeline(transaction=False)
        for _, method, args in REQUEST:
            getattr(pipe, method)(*args)
        pipe.execute()

    return run


def check_results(clients: dict[str, redis.Redis]) -> None:
    """The pipeline must do the work, not just be fast: same replies as plain calls."""
    for client in clients.values():
        client.flushall()
    expected = [getattr(clients[backend], method)(*args) for backend, method, args in REQUEST]
    for client in clients.values():
        client.flushall()
    with pipeline(name="a") as p:
        futures = [getattr(p[backend], method)(*args) for backend, method, args in REQUEST]
        p.execute()
    assert [f.result for f in futures] == expected, "redis_conn replies differ"


# -- measuring ---------------------------------------------------------------------------------


def wall_times(ways: dict[str, Callable[[], None]], runs: int) -> dict[str, list[float]]:
    """Milliseconds per run, the ways interleaved so drift hits them all alike."""
    for way in ways.values():
        for _ in range(5):
            way()  # connect, warm up
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def cpu_times(ways: dict[str, Callable[[], None]], runs: int) -> dict[str, list[float]]:
    """Client CPU milliseconds per run (process time: the server runs in another process)."""
    for way in ways.values():
        way()
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, way in ways.items():
            gc.collect()
            started = time.process_time()
            way()
            times[name].append((time.process_time() - started) * 1000)
    return times


def raw_cpu(client: redis.Redis) -> Callable[[], None]:
    def run() -> None:
        pipe = client.pipeline(transaction=False)
        for i in range(CPU_COMMANDS):
            pipe.set(f"key:{i}", "value")
        pipe.execute()

    return run


def redis_conn_cpu() -> None:
    with pipeline(name="direct") as p:
        for i in range(CPU_COMMANDS):
            p.set(f"key:{i}", "value")
        p.execute()


# -- report ------------------------------------------------------------------------------------


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def draw_chart(
    latency: dict[str, float], floor: float, cpu: dict[str, float], delay_ms: float, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2.3, 1]}
    )
    names = list(latency)[::-1]
    values = [latency[n] for n in names]
    colors = ["#d62728" if n.startswith("redis_conn") else "#7f7f7f" for n in names]
    left.barh(names, values, color=colors)
    left.set_xscale("log")
    left.set_xlabel("median milliseconds per request (log scale)")
    left.set_title(f"40 commands, 2 backends, {delay_ms:g} ms per round trip")
    for y, value in enumerate(values):
        left.text(value * 1.05, y, f"{value:.2f} ms ({value / floor:.2f}x floor)", va="center")
    left.set_xlim(1, max(values) * 6)

    cpu_names = list(cpu)
    labels = [name.removesuffix(" pipeline") for name in cpu_names]
    right.bar(labels, [cpu[n] for n in cpu_names], color=["#7f7f7f", "#d62728"])
    right.set_ylabel("client CPU milliseconds (median)")
    right.set_title(f"{CPU_COMMANDS:,} pipelined SETs")
    base = cpu[cpu_names[0]]
    for x, name in enumerate(cpu_names):
        right.text(x, cpu[name], f"{cpu[name]:.1f} ms\n{cpu[name] / base:.2f}x", ha="center",
                   va="bottom")  # fmt: skip
    right.set_ylim(top=max(cpu.values()) * 1.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="requests per way (default 100)")
    parser.add_argument("--cpu-runs", type=int, default=15, help="CPU runs per way (default 15)")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="proxy delay per round trip")
    parser.add_argument("--chart", type=Path, default=CHART, help="where to draw the PNG")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pipeline-")))
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        ports = {b: stack.enter_context(redis_server(tmp / b)) for b in ("a", "b")}
        proxied = {b: stack.enter_context(latency_proxy(ports[b], args.delay_ms)) for b in ports}
        urls = {b: f"redis://127.0.0.1:{proxied[b]}/0" for b in ports}
        connections.configure(
            {
                "a": {"URL": urls["a"]},
                "b": {"URL": urls["b"]},
                "direct": {"URL": f"redis://127.0.0.1:{ports['a']}/0"},
            }
        )
        stack.callback(connections.close_all)
        clients = {b: stack.enter_context(redis.Redis.from_url(urls[b])) for b in ports}
        direct = stack.enter_context(redis.Redis(port=ports["a"]))
        for backend, client in clients.items():
            redpipe.connect_redis(client, name=backend)
        stack.callback(redpipe.reset)

        check_results(clients)
        ways = {
            "plain redis-py, 1 round trip per command": plain_calls(clients),
            "redpipe, no threads": redpipe_request(threads=False),
            "redpipe, threads": redpipe_request(threads=True),
            "redis_conn pipeline": redis_conn_request,
            "floor: 1 redis-py pipeline, 1 backend": floor_request(clients["a"]),
        }
        latency_runs = wall_times(ways, args.runs)
        cpu_runs = cpu_times(
            {"raw redis-py pipeline": raw_cpu(direct), "redis_conn pipeline": redis_conn_cpu},
            args.cpu_runs,
        )

    latency = {name: statistics.median(values) for name, values in latency_runs.items()}
    cpu = {name: statistics.median(values) for name, values in cpu_runs.items()}
    floor = latency["floor: 1 redis-py pipeline, 1 backend"]
    ours = latency["redis_conn pipeline"]
    redpipe_best = min(latency["redpipe, no threads"], latency["redpipe, threads"])
    cpu_ratio = cpu["redis_conn pipeline"] / cpu["raw redis-py pipeline"]

    versions = (
        f"Python {platform.python_version()}, redis-py {redis.__version__}, "
        f"redpipe {redpipe.__version__}, hiredis {'yes' if redis.utils.HIREDIS_AVAILABLE else 'no'}"
    )
    print(f"redis_conn pipeline benchmark ({versions})")
    print(
        f"request: {len(REQUEST)} commands over 2 backends, each behind a {args.delay_ms:g} ms "
        f"latency proxy; {args.runs} runs per way, interleaved"
    )
    print()
    print(f"{'way':<44}{'median ms':>11}{'p90 ms':>9}{'x floor':>9}")
    for name, values in latency_runs.items():
        print(f"{name:<44}{latency[name]:>11.2f}{p90(values):>9.2f}{latency[name] / floor:>9.2f}")
    print()
    print(
        f"client CPU, {CPU_COMMANDS:,} pipelined SETs straight to the server, {args.cpu_runs} runs"
    )
    for name in cpu_runs:
        ratio = cpu[name] / cpu["raw redis-py pipeline"]
        print(f"{name:<44}{cpu[name]:>11.1f} ms{ratio:>8.2f}x")
    print()
    targets = [
        (f"redis_conn <= 1.2x the floor ({ours / floor:.2f}x)", ours <= 1.2 * floor),
        (
            f"redis_conn faster than redpipe ({ours:.2f} ms vs {redpipe_best:.2f} ms at best)",
            ours < redpipe_best,
        ),
        (f"client CPU <= 1.2x raw redis-py ({cpu_ratio:.2f}x)", cpu_ratio <= 1.2),
    ]
    for label, met in targets:
        print(f"{'PASS' if met else 'FAIL'}  {label}")

    draw_chart(latency, floor, cpu, args.delay_ms, args.chart)
    print(f"\nchart: {args.chart}")
    return 0 if (not args.check or all(met for _, met in targets)) else 1


if __name__ == "__main__":
    sys.exit(main())
