"""Web benchmark of the example Django site: what redis_conn costs and what it saves.

1. The request-pipeline middleware on a page that does not use Redis: requests/s with it vs
   without it (target: ratio >= 0.97).
2. A view doing 20 commands: 20 round trips on the shared client, one request pipeline
   (one round trip), and a new ``redis.Redis`` built in the view on every request (the common
   mistake: a new pool and a new TCP connection per request).

Each is measured twice: in-process, calling Django's WSGI handler directly (no HTTP, so the
middleware's own cost is not hidden by the network), and over HTTP against gunicorn, driven by
bench/web_load.py. Variants are measured in alternating rounds and the median is kept, so
that a slow moment of the machine hurts every variant alike.

A private redis-server is started on a free 127.0.0.1 port (tests/servers.py) and stopped at
the end; so are the gunicorn servers.

    .venv/bin/python bench/web_bench.py            # about a minute
    .venv/bin/python bench/web_bench.py --quick    # a few seconds: a smoke run (used by CI)
    .venv/bin/python bench/web_bench.py --json     # the figures as JSON, after the table
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for entry in (REPO / "example_django", REPO / "bench", REPO):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from bench.web_load import run_load, serve  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

PLAIN, PER_COMMAND, PIPELINED, NEW_CLIENT = (
    "/bench/plain/",
    "/bench/per-command/",
    "/bench/pipelined/",
    "/bench/new-client/",
)


def median_rates(
    variants: dict[str, Callable[[], float]], rounds: int
) -> dict[str, dict[str, Any]]:
    """Run each variant once per round, in a shuffled order; requests/s per variant.

    The raw samples are kept (``samples``, one per round) so that two variants can be compared
    round by round (see :func:`paired_ratio`).
    """
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    shuffle = random.Random(2024).shuffle
    for _ in range(rounds):
        shuffle(names)
        for name in names:
            samples[name].append(variants[name]())
    return {
        name: {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "samples": values,
        }
        for name, values in samples.items()
    }


def paired_ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    """The median over rounds of a's requests/s divided by b's in the same round."""
    return statistics.median(x / y for x, y in zip(a["samples"], b["samples"], strict=True))


# -- in-process: Django's WSGI handler, called directly -----------------------------------------


def wsgi_environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def in_process(redis_url: str, *, rounds: int, plain_n: int, commands_n: int) -> dict[str, Any]:
    os.environ.update(
        {"DJANGO_SETTINGS_MODULE": "web_settings", "DJANGO_DEBUG": "0", "REDIS_URL": redis_url}
    )
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    django.setup()
    with_middleware = WSGIHandler()
    baseline = [m for m in settings.MIDDLEWARE if not m.startswith("redis_conn.")]
    assert len(baseline) == len(settings.MIDDLEWARE) - 1, "the middleware is not installed"
    with override_settings(MIDDLEWARE=baseline):
        without_middleware = WSGIHandler()

    def requests(handler: WSGIHandler, path: str, count: int) -> Callable[[], float]:
        def run() -> float:
            statuses: list[str] = []

            def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
                statuses.append(status)

            started = time.perf_counter()
            for _ in range(count):
                body = handler(wsgi_environ(path), start_response)
                b"".join(body)
                body.close()
            elapsed = time.perf_counter() - started
            assert statuses == ["200 OK"] * count, set(statuses)
            return count / elapsed

        return run

    for handler in (with_middleware, without_middleware):  # warm up: imports, pools, caches
        requests(handler, PLAIN, 50)()
    requests(with_middleware, PER_COMMAND, 10)()
    plain = median_rates(
        {
            "with_middleware": requests(with_middleware, PLAIN, plain_n),
            "without_middleware": requests(without_middleware, PLAIN, plain_n),
        },
        rounds,
    )
    commands = median_rates(
        {
            "per_command": requests(with_middleware, PER_COMMAND, commands_n),
            "pipelined": requests(with_middleware, PIPELINED, commands_n),
            "new_client": requests(with_middleware, NEW_CLIENT, commands_n),
        },
        rounds,
    )
    return {"plain": plain, "commands": commands}


def in_process_asgi(*, rounds: int, plain_n: int) -> dict[str, Any]:
    """The middleware's cost under ASGI (its async path), on the plain page only.

    Call after :func:`in_process`, which set Django up.
    """
    import asyncio

    from django.conf import settings
    from django.core.handlers.asgi import ASGIHandler
    from django.test.utils import override_settings

    with_middleware = ASGIHandler()
    with override_settings(
        MIDDLEWARE=[m for m in settings.MIDDLEWARE if not m.startswith("redis_conn.")]
    ):
        without_middleware = ASGIHandler()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PLAIN,
        "raw_path": PLAIN.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }

    async def one(handler: ASGIHandler) -> int:
        answered = asyncio.Event()
        messages: list[dict[str, Any]] = []
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await handler(scope, receive, send)
        answered.set()
        return int(messages[0]["status"])

    def requests(handler: ASGIHandler, count: int) -> Callable[[], float]:
        def run() -> float:
            async def many() -> list[int]:
                return [await one(handler) for _ in range(count)]

            started = time.perf_counter()
            statuses = asyncio.run(many())
            elapsed = time.perf_counter() - started
            assert statuses == [200] * count, set(statuses)
            return count / elapsed

        return run

    requests(with_middleware, 20)()
    requests(without_middleware, 20)()
    plain = median_rates(
        {
            "with_middleware": requests(with_middleware, plain_n),
            "without_middleware": requests(without_middleware, plain_n),
        },
        rounds,
    )
    return {"plain": plain}


# -- over HTTP: gunicorn and the load generator -------------------------------------------------


def over_http(
    redis_url: str, *, rounds: int, plain_n: int, commands_n: int, log_dir: Path
) -> dict[str, Any]:
    common = {
        "DJANGO_SETTINGS_MODULE": "web_settings",
        "DJANGO_DEBUG": "0",
        "REDIS_URL": redis_url,
    }
    concurrency = 4

    def load(port: int, path: str, count: int) -> Callable[[], float]:
        def run() -> float:
            result = run_load(port, [path], total=count, concurrency=concurrency)
            assert not result.errors and result.ok == count, result.summary()
            return result.rps

        return run

    # Both servers run side by side; their rounds alternate, so both see the same machine.
    with (
        serve("sync", {**common, "WEB_BENCH_MIDDLEWARE": "1"}, log_dir=log_dir, workers=2,
              ready_path=PLAIN) as with_mw,
        serve("sync", {**common, "WEB_BENCH_MIDDLEWARE": "0"}, log_dir=log_dir, workers=2,
              ready_path=PLAIN) as without_mw,
    ):  # fmt: skip
        load(with_mw.port, PLAIN, 100)()
        load(without_mw.port, PLAIN, 100)()
        plain = median_rates(
            {
                "with_middleware": load(with_mw.port, PLAIN, plain_n),
                "without_middleware": load(without_mw.port, PLAIN, plain_n),
            },
            rounds,
        )
        commands = median_rates(
            {
                "per_command": load(with_mw.port, PER_COMMAND, commands_n),
                "pipelined": load(with_mw.port, PIPELINED, commands_n),
                "new_client": load(with_mw.port, NEW_CLIENT, commands_n),
            },
            rounds,
        )
    return {"plain": plain, "commands": commands, "server": "gunicorn sync, 2 workers"}


# -- report -------------------------------------------------------------------------------------


def table(title: str, result: dict[str, Any]) -> Iterable[str]:
    plain, commands = result["plain"], result["commands"]
    ratio = paired_ratio(plain["with_middleware"], plain["without_middleware"])
    yield f"{title}"
    yield f"  {'view':<44} {'req/s (median)':>14} {'min':>8} {'max':>8}"
    rows = [
        ("no Redis, with RequestPipelineMiddleware", plain["with_middleware"]),
        ("no Redis, without the middleware", plain["without_middleware"]),
        ("20 commands, one round trip each (shared pool)", commands["per_command"]),
        ("20 commands, request pipeline (1 round trip)", commands["pipelined"]),
        ("20 commands, new redis.Redis() per request", commands["new_client"]),
    ]
    for label, stats in rows:
        yield (f"  {label:<44} {stats['median']:>14.0f} {stats['min']:>8.0f} {stats['max']:>8.0f}")
    per_command = commands["per_command"]["median"]
    yield f"  middleware overhead ratio (with / without, median of rounds): {ratio:.3f}"
    yield (
        f"  request pipeline vs per-command calls: "
        f"{commands['pipelined']['median'] / per_command:.2f}x"
    )
    yield (
        f"  new client per request vs shared pool:   "
        f"{commands['new_client']['median'] / per_command:.2f}x"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="A few seconds: a smoke run.")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON too.")
    parser.add_argument("--no-http", action="store_true", help="Skip the gunicorn part.")
    args = parser.parse_args(argv)
    if args.quick:
        rounds, plain_n, commands_n, http_plain_n, http_commands_n = 3, 200, 50, 100, 50
    else:
        rounds, plain_n, commands_n, http_plain_n, http_commands_n = 15, 2000, 300, 1000, 300

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="web_bench-") as tmp:
        server = RedisServer("web_bench", Path(tmp))
        server.start()
        try:
            figures["in_process"] = in_process(
                server.url, rounds=rounds, plain_n=plain_n, commands_n=commands_n
            )
            figures["in_process_asgi"] = in_process_asgi(rounds=rounds, plain_n=plain_n // 10)
            if not args.no_http:
                figures["http"] = over_http(
                    server.url,
                    rounds=rounds,
                    plain_n=http_plain_n,
                    commands_n=http_commands_n,
                    log_dir=Path(tmp),
                )
        finally:
            server.stop()
    print(f"redis_conn web benchmark ({'quick' if args.quick else 'full'}, {rounds} rounds)")
    for line in table("in-process (Django WSGI handler, no HTTP):", figures["in_process"]):
        print(line)
    asgi = figures["in_process_asgi"]["plain"]
    asgi_ratio = paired_ratio(asgi["with_middleware"], asgi["without_middleware"])
    print("in-process ASGI (Django ASGI handler; the middleware's async path), no Redis:")
    print(
        f"  with {asgi['with_middleware']['median']:.0f} req/s, without "
        f"{asgi['without_middleware']['median']:.0f} req/s; "
        f"middleware overhead ratio {asgi_ratio:.3f}"
    )
    if "http" in figures:
        for line in table(f"over HTTP ({figures['http']['server']}):", figures["http"]):
            print(line)
    if args.json:
        for section in figures.values():
            plain = section["plain"]
            section["middleware_ratio"] = paired_ratio(
                plain["with_middleware"], plain["without_middleware"]
            )
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
