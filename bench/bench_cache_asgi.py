"""Django's cache API under ASGI: redis_conn's native async backend against the alternatives.

Every variant serves the same async view under uvicorn, loaded by ``wrk`` (a C load generator,
Debian's ``wrk`` package) with 300 concurrent connections. The view does 5 cache reads and
1 write (``await cache.aget(...)`` x5, ``await cache.aset(...)``); the ceiling is the same view
with no cache calls. Variants, measured in alternating rounds on one private redis-server:

* ``ceiling``: no cache calls;
* ``redis_conn defaults``: ``redis_conn.django.cache.RedisCache`` on a connection with no
  ``MULTIPLEX`` key (multiplexed: the default since issue 22);
* ``redis_conn MULTIPLEX False``: the same, opted out: pooled (MAX_CONNECTIONS=50);
* ``redis_conn MULTIPLEX``: the same on a ``"MULTIPLEX": True`` connection, when this build of
  redis_conn has it (``--multiplex`` insists, ``--no-multiplex`` leaves it out);
* ``redis_conn MULTIPLEX+CLIENT_CACHE``: the MULTIPLEX connection with ``"CLIENT_CACHE":
  True`` (the 5 reads are answered from process memory; the write goes to the server);
* ``dict reads + 1 write``: the physical best for that view: the 5 reads from a dict, the
  write through the MULTIPLEX cache;
* ``django RedisCache``: ``django.core.cache.backends.redis.RedisCache`` (its async methods are
  ``sync_to_async`` wrappers; its pools are per thread, unbounded);
* ``django-redis``: ``django_redis.cache.RedisCache`` with ``max_connections`` 50, the same
  budget as ours.

For each: requests/s (median of the rounds), errors during the measured loads (``wrk``'s
non-2xx responses and socket errors), the 500s the server logged over its whole life (warm-ups
included), the peak number of server connections during the load (``INFO clients``, sampled
every 50 ms), and the ratio to the ceiling and to Django's RedisCache.

    .venv/bin/python bench/bench_cache_asgi.py               # ~3 minutes
    .venv/bin/python bench/bench_cache_asgi.py --quick       # a smoke run
    apt-get install -y wrk                                   # if wrk is missing

The same file is the Django settings module and ASGI app of the servers it starts
(``BENCH_CACHE_VARIANT`` in their environment says which variant).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VARIANT = os.environ.get("BENCH_CACHE_VARIANT", "")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
READS, WRITES = 5, 1
MAX_CONNECTIONS = 50

# -- the servers' Django settings -----------------------------------------------------------

SECRET_KEY = "bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench_cache_asgi"
DATABASES: dict[str, Any] = {}
USE_TZ = True
LOGGING_CONFIG = None
REDIS_CONNECTIONS = {
    "default": {
        "URL": REDIS_URL,
        "MAX_CONNECTIONS": MAX_CONNECTIONS,
        **(
            {"MULTIPLEX": False}
            if VARIANT == "redis_conn MULTIPLEX False"
            else {"MULTIPLEX": True}
            if "MULTIPLEX" in VARIANT or VARIANT == "dict reads + 1 write"
            else {}
        ),
        **({"CLIENT_CACHE": True} if VARIANT == "redis_conn MULTIPLEX+CLIENT_CACHE" else {}),
    }
}
LOCAL = {f"bench:{i}": None for i in range(READS)}
_BACKENDS: dict[str, dict[str, Any]] = {
    "redis_conn defaults": {"BACKEND": "redis_conn.django.cache.RedisCache"},
    "redis_conn MULTIPLEX False": {"BACKEND": "redis_conn.django.cache.RedisCache"},
    "redis_conn MULTIPLEX": {"BACKEND": "redis_conn.django.cache.RedisCache"},
    "redis_conn MULTIPLEX+CLIENT_CACHE": {"BACKEND": "redis_conn.django.cache.RedisCache"},
    "dict reads + 1 write": {"BACKEND": "redis_conn.django.cache.RedisCache"},
    "django RedisCache": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    },
    "django-redis": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"CONNECTION_POOL_KWARGS": {"max_connections": MAX_CONNECTIONS}},
    },
}
CACHES = {"default": _BACKENDS.get(VARIANT, {"BACKEND": "redis_conn.django.cache.RedisCache"})}


async def cached_view(request: Any) -> Any:
    from django.core.cache import cache
    from django.http import HttpResponse

    for i in range(READS):
        await cache.aget(f"bench:{i}")
    await cache.aset("bench:write", request.path)
    return HttpResponse("ok")


async def dict_view(request: Any) -> Any:
    from django.core.cache import cache
    from django.http import HttpResponse

    for i in range(READS):
        LOCAL.get(f"bench:{i}")
    await cache.aset("bench:write", request.path)
    return HttpResponse("ok")


async def ceiling_view(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("ok")


if VARIANT:
    from django.core.asgi import get_asgi_application
    from django.urls import path

    views = {"ceiling": ceiling_view, "dict reads + 1 write": dict_view}
    urlpatterns = [path("", views.get(VARIANT, cached_view))]
    application = get_asgi_application()


# -- the driver -------------------------------------------------------------------------------


def multiplex_available() -> bool:
    from redis_conn.config import KNOWN_KEYS

    return "MULTIPLEX" in KNOWN_KEYS


def multiplex_by_default() -> bool:
    from redis_conn.entries import DEFAULTS

    return bool(DEFAULTS.get("MULTIPLEX"))


def client_cache_available() -> bool:
    from redis_conn.entries import KNOWN_KEYS

    return "CLIENT_CACHE" in KNOWN_KEYS


def free_port() -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from servers import free_port as harness_free_port

    return int(harness_free_port())


class PeakClients:
    """Samples ``INFO clients`` every 50 ms; ``peak`` excludes the sampler's own connection."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            connected = int(self.client.info("clients")["connected_clients"]) - 1
            self.peak = max(self.peak, connected)

    def __enter__(self) -> PeakClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()


def start_server(variant: str, port: int, redis_url: str, workers: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "BENCH_CACHE_VARIANT": variant,
        "BENCH_REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "bench_cache_asgi",
        "PYTHONPATH": os.pathsep.join([str(REPO / "bench"), str(REPO)]),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench_cache_asgi:application",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            if server.poll() is not None:
                log = server.stdout.read() if server.stdout else ""
                raise RuntimeError(f"uvicorn for {variant!r} exited:\n{log}") from None
            time.sleep(0.1)  # polling for the server to answer, bounded by the deadline
    server.kill()
    raise RuntimeError(f"uvicorn for {variant!r} did not answer within 30 s")


def stop_server(server: subprocess.Popen[str]) -> str:
    server.terminate()
    try:
        out, _ = server.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        out, _ = server.communicate()
    return out


def run_wrk(port: int, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(n) for n in match.groups())
    return {"rate": rate, "errors": errors}


def settle(redis_url: str) -> None:
    """Wait (at most 10 s) until the previous variant's server process has let go of its
    connections, so that they are not counted as this one's."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        deadline = time.monotonic() + 10
        while int(client.info("clients")["connected_clients"]) > 1:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)


def measure(
    variant: str, redis_url: str, *, seconds: int, connections: int, workers: int
) -> dict[str, float]:
    settle(redis_url)
    port = free_port()
    server = start_server(variant, port, redis_url, workers)
    try:
        run_wrk(port, 2, connections)  # warm-up: imports, pools, connections
        with PeakClients(redis_url) as clients:
            result = run_wrk(port, seconds, connections)
        result["peak_clients"] = clients.peak
    finally:
        log = stop_server(server)
    result["logged_500s"] = log.count("Internal Server Error")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="Rounds per variant (median).")
    parser.add_argument("--seconds", type=int, default=10, help="Seconds of load per round.")
    parser.add_argument("--connections", type=int, default=300, help="wrk's connections.")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes.")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s: a smoke run.")
    parser.add_argument("--only", action="append", help="Measure only this variant (repeatable).")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--multiplex", action="store_true", help="Require the MULTIPLEX variant.")
    group.add_argument("--no-multiplex", action="store_true", help="Leave MULTIPLEX out.")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 3
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    variants = ["ceiling", "redis_conn defaults", "django RedisCache", "django-redis"]
    if args.multiplex and not multiplex_available():
        print("This build of redis_conn has no MULTIPLEX connections.", file=sys.stderr)
        return 2
    if multiplex_available() and not args.no_multiplex:
        variants[2:2] = ["redis_conn MULTIPLEX False", "redis_conn MULTIPLEX"]
        if client_cache_available():
            variants[4:4] = ["redis_conn MULTIPLEX+CLIENT_CACHE", "dict reads + 1 write"]
    if args.only:
        variants = [v for v in variants if v in args.only or v == "ceiling"]

    sys.path.insert(0, str(REPO / "tests"))
    import django
    import redis
    from servers import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer("bench_cache", Path(tmp))
        server.start()
        try:
            with redis.Redis.from_url(server.url) as raw:
                raw.config_set("maxclients", 10000)
            samples: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
            for round_ in range(args.rounds):
                order = variants[round_ % len(variants) :] + variants[: round_ % len(variants)]
                for variant in order:
                    samples[variant].append(
                        sample := measure(
                            variant,
                            server.url,
                            seconds=args.seconds,
                            connections=args.connections,
                            workers=args.workers,
                        )
                    )
                    print(f"# round {round_ + 1}: {variant}: {sample}", file=sys.stderr)
        finally:
            server.stop()

    versions = (
        f"Python {sys.version.split()[0]}, Django {django.get_version()}, "
        f"redis-py {redis.__version__}"
    )
    print(f"Django cache under ASGI ({versions}; uvicorn, {args.workers} worker)")
    print(
        f"view: {READS} cache reads + {WRITES} write; wrk, {args.connections} connections, "
        f"{args.seconds} s x {args.rounds} rounds, median; MAX_CONNECTIONS={MAX_CONNECTIONS}\n"
    )
    rates = {v: statistics.median(s["rate"] for s in samples[v]) for v in variants}
    header = f"{'variant':<36}{'req/s':>9}{'errors':>9}{'500s logged':>13}{'peak conns':>12}"
    print(header + f"{'x ceiling':>11}{'x django':>10}")
    for variant in variants:
        errors = sum(int(s["errors"]) for s in samples[variant])
        logged = sum(int(s["logged_500s"]) for s in samples[variant])
        peak = max(int(s["peak_clients"]) for s in samples[variant])
        print(
            f"{variant:<36}{rates[variant]:>9.0f}{errors:>9}{logged:>13}{peak:>12}"
            f"{rates[variant] / rates['ceiling']:>11.2f}"
            f"{rates[variant] / rates.get('django RedisCache', rates['ceiling']):>10.2f}"
        )
    print()
    by_default = MAX_CONNECTIONS if not multiplex_by_default() else 2
    for variant, connection_limit, target in (
        ("redis_conn defaults", by_default * args.workers, 0.8),
        ("redis_conn MULTIPLEX False", MAX_CONNECTIONS * args.workers, None),  # opted out
        ("redis_conn MULTIPLEX", 2 * args.workers, 0.8),
        # + the invalidation connection
        ("redis_conn MULTIPLEX+CLIENT_CACHE", 3 * args.workers, 0.9),
    ):
        if variant not in samples:
            continue
        ratio = rates[variant] / rates["ceiling"]
        errors = sum(int(s["errors"] + s["logged_500s"]) for s in samples[variant])
        peak = max(int(s["peak_clients"]) for s in samples[variant])
        checks = (
            []
            if target is None
            else [(ratio >= target, f"{variant} >= {target}x the ceiling ({ratio:.2f}x)")]
        )
        for ok, text in [
            *checks,
            (errors == 0, f"{variant} has no errors ({errors})"),
            (
                peak <= connection_limit,
                f"{variant} <= {connection_limit} server connections "
                f"for {args.workers} worker(s) ({peak})",
            ),
        ]:
            print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if "dict reads + 1 write" in rates and "redis_conn MULTIPLEX+CLIENT_CACHE" in rates:
        best = rates["dict reads + 1 write"]
        ours = rates["redis_conn MULTIPLEX+CLIENT_CACHE"]
        print(
            f"the physical best here (dict reads + 1 write): {best / rates['ceiling']:.2f}x the "
            f"ceiling; CLIENT_CACHE reaches {ours / best:.2f}x of it"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
