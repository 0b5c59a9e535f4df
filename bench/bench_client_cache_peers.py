"""redis_conn's CLIENT_CACHE against django-cachex's client tracking, side by side in one run.

Both are Django cache backends keeping local copies that the server invalidates (CLIENT
TRACKING ... BCAST). One run starts one private redis-server (a free port, never 6379; stopped
at the end) and one Django settings with the aliases of both libraries:

- redis_conn: ``redis_conn.django.cache.RedisCache`` on four named connections, pooled and
  MULTIPLEX, each without and with ``CLIENT_CACHE`` (``KEY_PREFIX`` "rc").
- django-cachex: ``django_cachex.cache.RedisCache`` on the same URL, without and with
  ``OPTIONS={"tracking": True}`` (``KEY_PREFIX`` "cx").

django-cachex's tracking hears only the writes under its key prefix (``BCAST PREFIX cx:``,
derived from KEY_PREFIX); redis_conn's ``CLIENT_CACHE`` is given the same scope,
``{"PREFIXES": ["rc:"]}`` (``--all-keys``: plain ``True``, which then also hears the other
library's writes).

1. Django ``cache.get`` of a hot key (a pickled dict), sync, each without and with its cache:
   us per read, and the reads each library answered from its local copies.
2. ``await cache.aget`` of the same key: redis_conn MULTIPLEX and pooled, and django-cachex.
3. Invalidation delay: a plain redis-py client SETs the key (an int, stored as its digits by
   both); time until the cached reader's ``cache.get`` (spinning) returns the new value.
4. Stale reads: a writer process writes an increasing counter (a pickled dict) about 1,000
   times a second through the library's alias WITHOUT the cache; the reader loops on the
   cached alias's ``get``, reads through the plain alias every millisecond, and counts the
   cached reads that returned a value older than a plain read had shown >= 10 ms (and
   >= 1 ms) before the cached read started.

Each round of 1.-2. is a child process holding every alias (both libraries, in alternating
order); each round of 3.-4. is a child process per library holding only that library's two
aliases (and, in the "2nd CLIENT_CACHE conn." row, redis_conn's MULTIPLEX cached connection
too, as a process using both clients would), plus the writer process. 1.-2. print the median
of ``--rounds``; 3.-4. pool the samples of every round.

How to run, from the repository root (django-cachex 0.14 needs Python >= 3.14 and Django 6,
so it is in no extra of pyproject.toml)::

    bash scripts/python-from-debian 3.14   # prints the interpreter used on the next line
    /opt/redis_conn-pythons/3.14/root/usr/bin/python3.14 -m venv /tmp/v314
    /tmp/v314/bin/pip install -e '.[django,hiredis]' 'django>=6' 'django-cachex>=0.14,<0.15'
    /tmp/v314/bin/python bench/bench_client_cache_peers.py --rounds 5

(about 2.5 minutes; measured with Python 3.14.10, Django 6.1.3, redis-py 8.2.0, hiredis 3.5.0,
django-cachex 0.14.1, redis-server 7.0.15.)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
from servers import redis_server  # type: ignore[import-not-found]

RC = "redis_conn.django.cache.RedisCache"
CX = "django_cachex.cache.RedisCache"
HOT = {"user": 42, "name": "x" * 64, "roles": ["a", "b"]}  # pickled by both
THRESHOLDS = (0.010, 0.001)  # seconds: see 4. above


def configure(url: str, *, all_keys: bool, only: tuple[str, ...] = ()) -> None:
    """One Django settings for both libraries; ``only``: just these aliases (child processes)."""
    import django
    from django.conf import settings

    client_cache: Any = True if all_keys else {"PREFIXES": ["rc:"]}
    connections: dict[str, Any] = {
        "rc-plain": {"URL": url},
        "rc-cached": {"URL": url, "CLIENT_CACHE": client_cache},
        "rc-mux-plain": {"URL": url, "MULTIPLEX": True},
        "rc-mux-cached": {"URL": url, "MULTIPLEX": True, "CLIENT_CACHE": client_cache},
    }
    caches: dict[str, Any] = {
        name: {"BACKEND": RC, "LOCATION": name, "KEY_PREFIX": "rc"} for name in connections
    }
    caches["cx-plain"] = {"BACKEND": CX, "LOCATION": url, "KEY_PREFIX": "cx"}
    caches["cx-tracked"] = {
        "BACKEND": CX,
        "LOCATION": url,
        "KEY_PREFIX": "cx",
        "OPTIONS": {"tracking": True},
    }
    if only:
        connections = {name: spec for name, spec in connections.items() if name in only}
        caches = {name: spec for name, spec in caches.items() if name in only}
    caches["default"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    settings.configure(REDIS_CONNECTIONS=connections, CACHES=caches, INSTALLED_APPS=[])
    django.setup()


# -- the writer process (4.) ------------------------------------------------------------------


def run_writer(alias: str, url: str, seconds: float, rate: float) -> int:
    """Write {"n": 1, 2, ...} to "counter" through ``alias`` at ``rate`` a second."""
    configure(url, all_keys=False, only=(alias,))
    from django.core.cache import caches

    cache = caches[alias]
    started = time.perf_counter()
    n = 0
    lag = 0.0
    while time.perf_counter() - started < seconds:
        n += 1
        cache.set("counter", {"n": n}, timeout=None)
        wait = started + n / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        else:
            lag = max(lag, -wait)
    elapsed = time.perf_counter() - started
    print(json.dumps({"writes": n, "rate": n / elapsed, "worst_lag_ms": lag * 1e3}), flush=True)
    return 0


# -- measuring --------------------------------------------------------------------------------


def timed(call: Callable[[], Any], seconds: float) -> float:
    """Microseconds per call of ``call``: 200 warm-up calls, then batches of 100 for ``seconds``."""
    for _ in range(200):
        call()
    calls = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            call()
        calls += 100
    return elapsed / calls * 1e6


def atimed(loop: asyncio.AbstractEventLoop, make: Callable[[], Any], seconds: float) -> float:
    async def run() -> float:
        for _ in range(200):
            await make()
        calls = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for _ in range(100):
                await make()
            calls += 100
        return elapsed / calls * 1e6

    return loop.run_until_complete(run())


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def invalidation_delays(cache: Any, raw: redis.Redis, first: int, samples: int) -> list[float]:
    """Milliseconds from a plain client's SET returning to the cached ``cache.get`` seeing it."""
    key = "inv"
    full = cache.make_key(key)
    delays = []
    for n in range(first, first + samples):
        for _ in range(3):  # a local copy of the current value is there
            cache.get(key)
        raw.set(full, str(n))  # both backends store an int as its digits
        written = time.perf_counter()
        while cache.get(key) != n:
            if time.perf_counter() - written > 5:
                raise SystemExit(f"{cache!r} never saw the write of {n}")
        delays.append((time.perf_counter() - written) * 1e3)
    return delays


def stale_reads(
    cached: Any, plain: Any, writer_alias: str, url: str, seconds: float, rate: float
) -> dict[str, Any]:
    """Run a writer process on ``writer_alias`` and count the stale reads of ``cached``."""
    plain.delete("counter")
    writer = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--writer",
            writer_alias,
            "--url",
            url,
            "--seconds",
            str(seconds + 1.0),
            "--rate",
            str(rate),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while (plain.get("counter") or {"n": 0})["n"] < 50:  # the writer is up and writing
            if time.monotonic() > deadline or writer.poll() is not None:
                raise SystemExit(f"the writer on {writer_alias} did not start")
            time.sleep(0.005)
        # Per threshold: the plain reads not yet that old, and the newest value among those
        # that are (a cached read started now must return at least that).
        seen = {after: collections.deque[tuple[float, int]]() for after in THRESHOLDS}
        floor = dict.fromkeys(THRESHOLDS, 0)
        stale = dict.fromkeys(THRESHOLDS, 0)
        behind = dict.fromkeys(THRESHOLDS, 0)
        reads = plain_reads = 0
        last_plain = 0.0
        end = time.perf_counter() + seconds
        while (now := time.perf_counter()) < end:
            if now - last_plain >= 0.001:
                n = plain.get("counter")["n"]
                last_plain = time.perf_counter()
                for queue in seen.values():
                    queue.append((last_plain, n))
                plain_reads += 1
                now = time.perf_counter()
            for after, queue in seen.items():
                while queue and queue[0][0] <= now - after:
                    floor[after] = queue.popleft()[1]
            value = cached.get("counter")["n"]
            reads += 1
            for after, newest in floor.items():
                if value < newest:
                    stale[after] += 1
                    behind[after] = max(behind[after], newest - value)
        writer.wait(30)
        assert writer.stdout is not None
        report = json.loads(writer.stdout.read())
    finally:
        if writer.poll() is None:
            writer.terminate()
            writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
    return {
        "reads": reads,
        "plain_reads": plain_reads,
        "rate": report["rate"],
        **{f"stale {after * 1e3:g}": stale[after] for after in THRESHOLDS},
        **{f"behind {after * 1e3:g}": behind[after] for after in THRESHOLDS},
    }


def wait_ready(rc_names: list[str], cx_cache: Any | None) -> None:
    """Until redis_conn's caches listen and django-cachex's tracker is connected and fresh."""
    from redis_conn.registry import current_registry

    registry = current_registry()
    deadline = time.monotonic() + 10
    for name in rc_names:
        cache = registry.client_cache(name)
        assert cache is not None, name
        while not cache.listening:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: the client cache never started listening")
            time.sleep(0.01)
    if cx_cache is not None:
        cx_cache.get("hot")  # starts its tracker (on the first tracked read)
        while not cx_cache.adapter.tracking_info()["fresh"]:
            if time.monotonic() > deadline:
                raise SystemExit("django-cachex: tracking never connected")
            time.sleep(0.01)


def rc_hits(name: str) -> int:
    from redis_conn.registry import current_registry

    cache = current_registry().client_cache(name)
    return 0 if cache is None else cache.hits


def cx_hits(cache: Any) -> int:
    return int(cache.adapter.tracking_info()["hits"])


# -- 3. and 4.: a reader process per library --------------------------------------------------

# What a reader process holds: its cached alias, its plain alias, and (rc2) one more
# CLIENT_CACHE connection, as a process with pooled and MULTIPLEX clients would have.
READERS = {
    "rc": ("redis_conn", "rc-cached", "rc-plain", ()),
    "rc2": ("redis_conn, + a 2nd CLIENT_CACHE conn.", "rc-cached", "rc-plain", ("rc-mux-cached",)),
    "cx": ("django-cachex", "cx-tracked", "cx-plain", ()),
}


def run_reader(args: argparse.Namespace) -> int:
    """One round of 3. and 4. for ``args.reader`` in this process; prints them as JSON."""
    _, cached_alias, plain_alias, more = READERS[args.reader]
    configure(args.url, all_keys=args.all_keys, only=(cached_alias, plain_alias, *more))
    from django.core.cache import caches

    cached, plain = caches[cached_alias], caches[plain_alias]
    raw = redis.Redis.from_url(args.url)
    first = int(plain.get("inv") or 0) + 1
    for alias in (cached_alias, *more):
        caches[alias].get("inv")  # starts its listener
    rc_names = [a for a in (cached_alias, *more) if a.startswith("rc")]
    wait_ready(rc_names, cached if cached_alias == "cx-tracked" else None)
    delays = invalidation_delays(cached, raw, first, args.samples)
    stale = stale_reads(cached, plain, plain_alias, args.url, args.stale_seconds, args.rate)
    print(json.dumps({"delays": delays, "stale": stale}), flush=True)
    return 0


def child(url: str, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    """Run this script as a child process (``extra``: what it does); its last line, as JSON."""
    command = [sys.executable, __file__, "--url", url, "--seconds", str(args.seconds)]
    command += ["--stale-seconds", str(args.stale_seconds), "--rate", str(args.rate)]
    command += [*(["--all-keys"] if args.all_keys else []), *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(extra)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- 1. and 2.: both libraries in one process -------------------------------------------------

FIGURES = {
    "rc": [
        ("get", "rc-plain"),
        ("get", "rc-cached"),
        ("aget", "rc-mux-plain"),
        ("aget", "rc-mux-cached"),
        ("aget", "rc-plain"),
        ("aget", "rc-cached"),
    ],
    "cx": [
        ("get", "cx-plain"),
        ("get", "cx-tracked"),
        ("aget", "cx-plain"),
        ("aget", "cx-tracked"),
    ],
}


def run_figures(args: argparse.Namespace) -> int:
    """One round of 1. and 2., the libraries in the order ``args.figures`` names them."""
    configure(args.url, all_keys=args.all_keys)
    from django.core.cache import caches

    c = {alias: caches[alias] for alias in caches.settings if alias != "default"}
    for alias, cache in c.items():
        cache.set("hot", HOT, timeout=None)
        assert cache.get("hot") == HOT, alias
    wait_ready(["rc-cached", "rc-mux-cached"], c["cx-tracked"])
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(c["rc-mux-cached"].aget("hot")) == HOT
    assert loop.run_until_complete(c["cx-tracked"].aget("hot")) == HOT
    counters: dict[str, Callable[[], int]] = {
        "rc-cached": lambda: rc_hits("rc-cached"),
        "rc-mux-cached": lambda: rc_hits("rc-mux-cached"),
        "cx-tracked": lambda: cx_hits(c["cx-tracked"]),
    }
    micros: dict[str, float] = {}
    local: dict[str, int] = {}
    for lib in args.figures.split(","):
        for op, alias in FIGURES[lib]:
            cache = c[alias]
            before = counters[alias]() if alias in counters else 0
            if op == "get":
                micros[f"{op} {alias}"] = timed(lambda cache=cache: cache.get("hot"), args.seconds)
            else:
                micros[f"{op} {alias}"] = atimed(
                    loop, lambda cache=cache: cache.aget("hot"), args.seconds
                )
            if alias in counters:
                local[f"{op} {alias}"] = counters[alias]() - before
    info = c["cx-tracked"].adapter.tracking_info()
    loop.close()
    print(json.dumps({"micros": micros, "local": local, "cx_info": info}), flush=True)
    return 0


# -- the run ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.4, help="Per figure of 1. and 2.")
    parser.add_argument("--samples", type=int, default=1_200, help="Of 3., per library.")
    parser.add_argument("--stale-seconds", type=float, default=5.0, help="Of 4., per round.")
    parser.add_argument("--rate", type=float, default=1_000.0, help="Writes a second in 4.")
    parser.add_argument("--all-keys", action="store_true", help='"CLIENT_CACHE": True')
    parser.add_argument("--writer", help=argparse.SUPPRESS)
    parser.add_argument("--reader", help=argparse.SUPPRESS)
    parser.add_argument("--figures", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        return run_writer(args.writer, args.url, args.seconds, args.rate)
    if args.reader:
        return run_reader(args)
    if args.figures:
        return run_figures(args)

    started = time.monotonic()
    figures: list[dict[str, Any]] = []
    readers: dict[str, list[dict[str, Any]]] = {reader: [] for reader in READERS}
    per_round = max(1, -(-args.samples // args.rounds))
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as port:
        url = f"redis://127.0.0.1:{port}/0"
        for r in range(args.rounds):
            order = "rc,cx" if r % 2 == 0 else "cx,rc"
            figures.append(child(url, args, "--figures", order))
            print(
                f"1.-2. round {r + 1}/{args.rounds}, {time.monotonic() - started:.0f} s", flush=True
            )
        for r in range(args.rounds):
            for reader in ["rc", "cx", "rc2"] if r % 2 == 0 else ["cx", "rc", "rc2"]:
                readers[reader].append(
                    child(url, args, "--reader", reader, "--samples", str(per_round))
                )
            print(
                f"3.-4. round {r + 1}/{args.rounds}, {time.monotonic() - started:.0f} s", flush=True
            )
    report(args, figures, readers)
    return 0


def report(
    args: argparse.Namespace,
    figures: list[dict[str, Any]],
    readers: dict[str, list[dict[str, Any]]],
) -> None:
    import django

    labels = figures[0]["micros"]
    med = {label: statistics.median(f["micros"][label] for f in figures) for label in labels}
    hits = {label: sum(f["local"][label] for f in figures) for label in figures[0]["local"]}
    server = "redis-server " + os.popen("redis-server --version").read().split()[2][2:]
    scope = "True" if args.all_keys else '{"PREFIXES": ["rc:"]}'
    print(
        f"\nredis_conn CLIENT_CACHE vs django-cachex tracking: the Django cache, one hot key\n"
        f"({server}, Python {sys.version.split()[0]}, Django {django.get_version()}, "
        f"redis-py {version('redis')}, hiredis {version('hiredis')}, "
        f"django-cachex {version('django-cachex')}, redis_conn {version('redis_conn')}, "
        f"{os.cpu_count()} CPUs;\n"
        f' redis_conn "CLIENT_CACHE": {scope}, django-cachex "tracking": True; '
        f"median of {args.rounds} rounds)"
    )

    def table(title: str, rows: list[tuple[str, str, str]], op: str) -> None:
        print(f"\n{title}")
        print(
            f"{'library (clients)':<28}{'no cache':>10}{'cache':>10}{'x faster':>10}"
            f"{'reads answered locally':>24}"
        )
        for name, plain, cached in rows:
            slow, fast = med[f"{op} {plain}"], med[f"{op} {cached}"]
            print(
                f"{name:<28}{slow:>10.2f}{fast:>10.2f}{slow / fast:>10.1f}"
                f"{hits[f'{op} {cached}']:>24,}"
            )

    table(
        "1. cache.get(hot key), sync, us/read",
        [
            ("redis_conn (pooled)", "rc-plain", "rc-cached"),
            ("django-cachex", "cx-plain", "cx-tracked"),
        ],
        "get",
    )
    ratio = med["get cx-tracked"] / med["get rc-cached"]
    print(
        f"   with the cache: django-cachex / redis_conn = {ratio:.2f}x; without: "
        f"{med['get cx-plain'] / med['get rc-plain']:.2f}x"
    )
    table(
        "2. await cache.aget(hot key), us/read",
        [
            ("redis_conn (MULTIPLEX)", "rc-mux-plain", "rc-mux-cached"),
            ("redis_conn (pooled)", "rc-plain", "rc-cached"),
            ("django-cachex", "cx-plain", "cx-tracked"),
        ],
        "aget",
    )
    cx_aget = med["aget cx-tracked"]
    print(
        f"   with the cache: django-cachex / redis_conn MULTIPLEX = "
        f"{cx_aget / med['aget rc-mux-cached']:.1f}x, / redis_conn pooled = "
        f"{cx_aget / med['aget rc-cached']:.1f}x"
    )

    names = {reader: spec[0] for reader, spec in READERS.items()}
    print(
        "\n3. invalidation delay: a plain redis-py SET -> the cached reader's cache.get "
        "(spinning) returns it, ms\n   (a reader process per library and round, holding only "
        "that library's aliases)"
    )
    print(f"{'library':<40}{'samples':>9}{'p50':>9}{'p99':>9}{'max':>9}")
    delays = {r: [d for row in rows for d in row["delays"]] for r, rows in readers.items()}
    for reader, d in delays.items():
        print(
            f"{names[reader]:<40}{len(d):>9,}{percentile(d, 0.5):>9.3f}"
            f"{percentile(d, 0.99):>9.3f}{max(d):>9.3f}"
        )
    rc99, cx99 = percentile(delays["rc"], 0.99), percentile(delays["cx"], 0.99)
    print(f"   p99: redis_conn / django-cachex = {rc99 / cx99:.2f}x")

    print(
        f"\n4. stale reads under a writer process (~{args.rate:,.0f} writes/s of an increasing "
        f"counter through the plain alias,\n   {args.stale_seconds:g} s x {args.rounds} rounds): "
        "cached reads returning a value older than a plain read had\n   shown >= 10 ms "
        "(>= 1 ms) before the cached read started; worst: how many writes behind"
    )
    print(
        f"{'library':<40}{'writes/s':>9}{'reads':>11}{'plain':>8}"
        f"{'stale 10ms':>11}{'worst':>7}{'stale 1ms':>11}{'worst':>7}"
    )
    for reader, rows in readers.items():
        stale = [row["stale"] for row in rows]
        reads = sum(row["reads"] for row in stale)
        cells = []
        for after in THRESHOLDS:
            bad = sum(row[f"stale {after * 1e3:g}"] for row in stale)
            worst = max(row[f"behind {after * 1e3:g}"] for row in stale)
            cells.append(f"{bad:>11,}{worst:>7,}")
        print(
            f"{names[reader]:<40}{statistics.median(row['rate'] for row in stale):>9,.0f}"
            f"{reads:>11,}{sum(row['plain_reads'] for row in stale):>8,}{''.join(cells)}"
        )
    print(
        "\ndjango-cachex's tracking_info() at the end of the last 1.-2. round: "
        f"{figures[-1]['cx_info']}"
    )


if __name__ == "__main__":
    sys.exit(main())
