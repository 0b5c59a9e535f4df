"""Production proof, load: many threads on a small pool, forked processes, request isolation
under 1,000 concurrent asyncio requests and 64 threads, and the example Django site under
gunicorn (``--preload``, sync and gthread workers) and uvicorn, driven by a bounded load
generator (bench/web_load.py), with the server's own counters checked against the requests
served.

The figures are printed and, when REDIS_CONN_FIGURES names a file, appended to it as JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_conn import ConnectionRegistry, PoolExhausted, get_redis
from redis_conn.pipeline import pipeline
from redis_conn.registry import connections
from redis_conn.request_scope import RequestPipeline, activate, current_pipeline, deactivate

try:
    from servers import ClusterDeployment, RedisServer
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import ClusterDeployment, RedisServer

from bench.web_load import connections_by_process, run_load, serve


def record_figure(name: str, value: Any, record_property: Callable[[str, Any], None]) -> None:
    """Show a measured figure, keep it in the junit report, and in REDIS_CONN_FIGURES if set."""
    print(f"\nFIGURE {name} = {value}")
    record_property(name, value)
    target = os.environ.get("REDIS_CONN_FIGURES")
    if target:
        with open(target, "a") as out:
            out.write(json.dumps({"figure": name, "value": value}) + "\n")


def clients_named(server: RedisServer, name: str) -> list[dict[str, Any]]:
    with server.probe_client() as probe:
        return [c for c in probe.client_list() if c.get("name") == name]


class UsageMonitor:
    """Samples a pool's counters in the background, to catch any moment above the limit."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.max_created = 0
        self.max_in_use = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(100_000):
            usage = self.pool.usage()
            self.max_created = max(self.max_created, usage.created)
            self.max_in_use = max(self.max_in_use, usage.in_use)
            if self._stop.wait(0.001):
                return

    def __enter__(self) -> UsageMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run_threads(count: int, target: Callable[[int], None], timeout: float = 60) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"


# -- 64 threads on a pool of 4 ----------------------------------------------------------------


@pytest.fixture
def registry() -> Iterator[ConnectionRegistry]:
    reg = ConnectionRegistry({"default": {"FAKE": True}})
    yield reg
    reg.close_all()


def test_64_threads_on_a_blocking_pool_of_4(
    registry: ConnectionRegistry,
    redis_server: RedisServer,
    record_property: Callable[[str, Any], None],
) -> None:
    registry.configure(
        {
            "load": {
                "URL": redis_server.url,
                "MAX_CONNECTIONS": 4,
                "POOL_TIMEOUT": 20,
                "OPTIONS": {"client_name": "load64"},
            }
        }
    )
    client = registry.get("load")
    errors: list[BaseException] = []
    rounds = 40

    def hammer(i: int) -> None:
        try:
            for n in range(rounds):
                if n % 4 == 3:  # a redis-py pipeline holds its connection a little longer
                    pipe = client.pipeline(transaction=False)
                    pipe.incr("count").set(f"t{i}", n).get(f"t{i}")
                    assert pipe.execute()[1:] == [True, str(n).encode()]
                else:
                    client.incr("count")
        except BaseException as exc:
            errors.append(exc)

    started = time.perf_counter()
    with UsageMonitor(client.connection_pool) as monitor:
        run_threads(64, hammer)
    elapsed = time.perf_counter() - started
    assert errors == []
    assert monitor.max_created <= 4 and monitor.max_in_use <= 4
    usage = client.connection_pool.usage()
    assert usage.in_use == 0 and usage.created <= 4
    assert client.get("count") == str(64 * rounds).encode()
    assert len(clients_named(redis_server, "load64")) <= 4
    record_figure("pool4_threads64_commands_per_s", round(64 * rounds / elapsed), record_property)


@pytest.mark.parametrize("blocking", [False, True], ids=["non-blocking", "blocking-timeout"])
def test_64_threads_on_a_failing_pool_of_4_only_pool_exhausted(
    registry: ConnectionRegistry, redis_server: RedisServer, blocking: bool
) -> None:
    registry.configure(
        {
            "tight": {
                "URL": redis_server.url,
                "MAX_CONNECTIONS": 4,
                "BLOCKING": blocking,
                "POOL_TIMEOUT": 0.01,
                "OPTIONS": {"client_name": "tight64"},
            }
        }
    )
    client = registry.get("tight")
    outcomes: Counter[str] = Counter()
    unexpected: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(64, timeout=10)
    expected = (
        "Redis connection 'tight': pool exhausted, no connection was released within "
        "POOL_TIMEOUT=0.01s; MAX_CONNECTIONS=4."
        if blocking
        else "Redis connection 'tight': pool exhausted, all connections are in use and the pool "
        "does not block (BLOCKING=False); MAX_CONNECTIONS=4."
    )

    def hammer(i: int) -> None:
        start.wait()
        for _ in range(15):
            try:
                # BLPOP holds the connection 20 ms: the pool is full most of the time.
                client.blpop([f"empty{i}"], timeout=0.02)
                client.incr("landed")
                result = "ok"
            except PoolExhausted as exc:
                result = "exhausted"
                if str(exc) != expected or exc.connection_name != "tight":
                    unexpected.append(exc)
            except BaseException as exc:
                unexpected.append(exc)
                result = "other"
            with lock:
                outcomes[result] += 1

    with UsageMonitor(client.connection_pool) as monitor:
        run_threads(64, hammer)
    assert unexpected == []
    assert outcomes["exhausted"] > 0 and outcomes["ok"] > 0
    assert monitor.max_created <= 4
    usage = client.connection_pool.usage()
    assert usage.in_use == 0 and usage.created <= 4
    # A failed attempt ran nothing: the counter is exactly the attempts that got through.
    assert client.get("landed") == str(outcomes["ok"]).encode()
    assert len(clients_named(redis_server, "tight64")) <= 4


def test_1000_tasks_on_an_async_pool_of_4(
    registry: ConnectionRegistry, redis_server: RedisServer
) -> None:
    # The pool itself (MULTIPLEX, the default, shares one connection instead).
    registry.configure(
        {"load": {"URL": redis_server.url, "MAX_CONNECTIONS": 4, "MULTIPLEX": False}}
    )

    async def main() -> tuple[int, int, int]:
        client = registry.get_async("load")
        peak = 0

        async def one(i: int) -> None:
            nonlocal peak
            await client.incr("count")
            assert await client.echo(f"m{i}") == f"m{i}".encode()
            peak = max(peak, client.connection_pool.usage().created)

        try:
            await asyncio.gather(*(one(i) for i in range(1000)))
            usage = client.connection_pool.usage()
            return peak, usage.in_use, int(await client.get("count"))
        finally:
            await registry.aclose_async()

    peak, in_use, count = asyncio.run(main())
    assert peak <= 4 and in_use == 0 and count == 1000


# -- fork --------------------------------------------------------------------------------------


def test_forked_children_make_their_own_connections(redis_server: RedisServer) -> None:
    connections.configure(
        {"default": {"URL": redis_server.url, "OPTIONS": {"client_name": "forked"}}}
    )
    try:
        parent = get_redis()
        parent_id = parent.client_id()
        children = []
        for child in range(4):
            read_end, write_end = os.pipe()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
                pid = os.fork()
            if pid == 0:  # the child: report its connection ids, never return into pytest
                status = 1
                try:
                    os.close(read_end)
                    ids = set()
                    for _ in range(100):
                        client = get_redis()
                        client.incr("forked")
                        ids.add(client.client_id())
                    with pipeline() as p:
                        in_batch = p.client_id()
                        p.execute()
                    ids.add(in_batch.result)
                    os.write(write_end, json.dumps(sorted(ids)).encode())
                    status = 0
                finally:
                    os._exit(status)
            os.close(write_end)
            children.append((pid, read_end, child))
        seen: list[set[int]] = []
        for pid, read_end, _ in children:
            with os.fdopen(read_end, "rb") as reader:
                data = reader.read()
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            seen.append(set(json.loads(data)))
        assert all(parent_id not in ids for ids in seen)
        assert sum(len(ids) for ids in seen) == len(set().union(*seen))  # pairwise disjoint
        # The parent's connection was never touched by a child: it still answers in order.
        assert parent.client_id() == parent_id
        assert parent.get("forked") == b"400"
    finally:
        connections.configure(None)


# -- request isolation -------------------------------------------------------------------------


@pytest.fixture
def two_servers(
    redis_server: RedisServer, redis_server_b: RedisServer
) -> Iterator[ConnectionRegistry]:
    reg = ConnectionRegistry(
        {"default": {"URL": redis_server.url}, "b": {"URL": redis_server_b.url}}
    )
    yield reg
    reg.close_all()


def test_1000_concurrent_asyncio_requests_never_share_a_batch(
    two_servers: ConnectionRegistry,
    redis_server: RedisServer,
    redis_server_b: RedisServer,
    record_property: Callable[[str, Any], None],
) -> None:
    requests = 1000
    problems: list[str] = []

    async def main() -> None:
        queued = 0
        everyone_queued = asyncio.Event()

        async def request(i: int) -> None:
            nonlocal queued
            scope = RequestPipeline(two_servers, description=f"request {i}")
            token = activate(scope)
            try:
                futures = []
                for j in range(4):
                    p = current_pipeline()
                    assert p is not None
                    futures.append(p.rpush(f"req:{i}", f"{i}.{j}"))
                    await asyncio.sleep(0)  # let the other requests queue in between
                counted = current_pipeline()["b"].incr(f"count:{i}")  # type: ignore[index]
                queued += 1
                if queued == requests:
                    everyone_queued.set()
                await asyncio.wait_for(everyone_queued.wait(), 30)
                # All 1,000 requests are open now; nobody has sent this request's commands.
                root = current_pipeline()
                if root is not scope.pipeline or len(root) != 5:
                    problems.append(f"request {i}: its root holds {len(root or [])} commands")
                if any(f.done() for f in [*futures, counted]):
                    problems.append(f"request {i}: a command was sent by another request")
                await scope.aflush()
                if [f.result for f in futures] != [1, 2, 3, 4] or counted.result != 1:
                    problems.append(f"request {i}: answers {[f.result for f in futures]}")
            finally:
                deactivate(token)

        await asyncio.gather(*(request(i) for i in range(requests)))

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    assert problems == []
    raw_a, raw_b = redis_server.client(), redis_server_b.client()
    pipe = raw_a.pipeline(transaction=False)
    for i in range(requests):
        pipe.lrange(f"req:{i}", 0, -1)
    lists = pipe.execute()
    assert all(lists[i] == [f"{i}.{j}".encode() for j in range(4)] for i in range(requests)), (
        "a request's commands ran in another request's batch"
    )
    assert raw_b.mget([f"count:{i}" for i in range(requests)]) == [b"1"] * requests
    record_figure("isolation_async_requests", requests, record_property)
    record_figure("isolation_async_seconds", round(elapsed, 2), record_property)


def test_64_threads_of_requests_never_share_a_batch(
    two_servers: ConnectionRegistry, redis_server: RedisServer
) -> None:
    problems: list[str] = []
    per_thread = 10
    start = threading.Barrier(64, timeout=10)

    def requests(t: int) -> None:
        for n in range(per_thread):
            rid = f"{t}-{n}"
            scope = RequestPipeline(two_servers)
            token = activate(scope)
            try:
                if n == 0:
                    start.wait()
                futures = []
                for j in range(4):
                    p = current_pipeline()
                    assert p is not None
                    futures.append(p.rpush(f"req:{rid}", j))
                    time.sleep(0)
                counted = current_pipeline()["b"].incr(f"count:{rid}")  # type: ignore[index]
                if len(scope.pipeline) != 5 or any(f.done() for f in [*futures, counted]):
                    problems.append(f"request {rid}: foreign commands in its batch")
                scope.flush()
                if [f.result for f in futures] != [1, 2, 3, 4] or counted.result != 1:
                    problems.append(f"request {rid}: answers {[f.result for f in futures]}")
            finally:
                deactivate(token)

    run_threads(64, requests)
    assert problems == []
    raw = redis_server.client()
    pipe = raw.pipeline(transaction=False)
    for t in range(64):
        for n in range(per_thread):
            pipe.lrange(f"req:{t}-{n}", 0, -1)
    assert pipe.execute() == [[b"0", b"1", b"2", b"3"]] * (64 * per_thread)


# -- the example Django site under gunicorn and uvicorn ----------------------------------------

HOME_PATH = "/?user=load"
STATS_PATH = "/api/stats/?user=load"


def command_calls(server: RedisServer | list[RedisServer]) -> Counter[str]:
    """``INFO commandstats`` calls per command (summed over several servers)."""
    servers = server if isinstance(server, list) else [server]
    calls: Counter[str] = Counter()
    for s in servers:
        with s.probe_client() as probe:
            for name, stats in probe.info("commandstats").items():
                calls[name.removeprefix("cmdstat_")] += int(stats["calls"])
    return calls


def error_replies(servers: list[RedisServer]) -> Counter[str]:
    """Error replies per command (``failed_calls`` + ``rejected_calls`` of commandstats).

    ``client|setinfo`` is left out: redis-py sends it on every new connection and ignores the
    error of servers older than 7.2, which do not know it.
    """
    errors: Counter[str] = Counter()
    for s in servers:
        with s.probe_client() as probe:
            for name, stats in probe.info("commandstats").items():
                command = name.removeprefix("cmdstat_")
                if command != "client|setinfo":
                    errors[command] += int(stats["failed_calls"]) + int(stats["rejected_calls"])
    return errors


def cluster_primaries(cluster: ClusterDeployment) -> list[RedisServer]:
    primaries = []
    for node in cluster.nodes:
        with node.probe_client() as probe:
            if probe.execute_command("ROLE")[0] == "master":
                primaries.append(node)
    return primaries


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sync", "gthread", "uvicorn"])
def test_example_site_under_load(
    kind: str,
    redis_server: RedisServer,
    redis_server_b: RedisServer,
    redis_cluster: ClusterDeployment,
    tmp_path: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    """4 workers (gunicorn --preload: forked after the master used Redis; uvicorn: spawned),
    1,200 requests over 8 keep-alive connections, half of them to a page that reads answers
    mid-view. Zero errors; each worker has its own connections; the servers' counters equal
    the requests served; every dashboard got its own INCR answer."""
    workers, total = 4, 1200
    master_file = tmp_path / "master-client-id"
    env = {
        "DJANGO_DEBUG": "0",
        "REDIS_URL": redis_server.url,
        "REDIS_ACTIVITY_URL": redis_server_b.url,
        "REDIS_CACHE_URL": redis_cluster.url,
        "REDIS_CACHE_CLUSTER": "1",
        "WEB_MASTER_USES_REDIS": str(master_file),
    }
    primaries = cluster_primaries(redis_cluster)
    before_a, before_b = command_calls(redis_server), command_calls(redis_server_b)
    before_cache = command_calls(primaries)
    all_servers = [redis_server, redis_server_b, *primaries]
    errors_before = error_replies(all_servers)
    with serve(kind, env, log_dir=tmp_path, workers=workers) as site:
        load_started = time.monotonic()
        result = run_load(
            site.port,
            [HOME_PATH, STATS_PATH],
            total=total,
            concurrency=8,
            keep_bodies=lambda path: path == STATS_PATH,
            requests_per_connection=10,
        )
        load_seconds = time.monotonic() - load_started
        worker_pids = site.worker_pids()
        held = connections_by_process([site.process.pid, *worker_pids], redis_server.port)
        with redis_server.probe_client() as probe:
            server_clients = {int(c["addr"].rsplit(":", 1)[1]): c for c in probe.client_list()}
            probe_port = int(probe.client_info()["addr"].rsplit(":", 1)[1])
        log = site.log()

    # Zero errors, zero protocol errors.
    assert result.errors == [] and dict(result.statuses) == {200: total}, result.summary()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert error_replies(all_servers) - errors_before == Counter()
    # Every dashboard read its own INCR: the answers are exactly 1..N, each once.
    dashboards = [json.loads(body) for path, body in result.bodies if path == STATS_PATH]
    assert sorted(d["hits"]["dashboard"] for d in dashboards) == list(range(1, total // 2 + 1))
    # The servers' counters equal the requests served.
    homes = dashboards_count = total // 2
    raw_a = redis_server.client()
    assert raw_a.get("hits:home") == str(homes).encode()
    assert raw_a.get("hits:dashboard") == str(dashboards_count).encode()
    calls_a = command_calls(redis_server) - before_a
    calls_b = command_calls(redis_server_b) - before_b
    calls_cache = command_calls(primaries) - before_cache
    assert calls_a["incrby"] == homes + dashboards_count
    assert calls_a["hset"] == homes and calls_a["hget"] == dashboards_count
    assert calls_b["lpush"] == homes + dashboards_count == calls_b["ltrim"]
    assert calls_b["lrange"] == dashboards_count
    assert calls_cache["set"] == homes and calls_cache["get"] == dashboards_count

    # Every worker has its own connections; the preloaded master's was never used by them.
    master_ports = held.pop(site.process.pid)
    own = {pid: ports - master_ports for pid, ports in held.items()}
    serving = {pid: ports for pid, ports in own.items() if ports}
    assert len(serving) >= 3, f"load reached {len(serving)} worker(s): {own}"
    all_own = [port for ports in serving.values() for port in ports]
    assert len(all_own) == len(set(all_own)), "two workers share a connection"
    assert all(len(ports) <= 50 for ports in serving.values())
    assert set(all_own) | master_ports <= set(server_clients)
    assert probe_port in server_clients
    if kind != "uvicorn":
        master_id = int(master_file.read_text())
        [master_conn] = [c for c in server_clients.values() if int(c["id"]) == master_id]
        assert int(master_conn["idle"]) >= int(load_seconds) and master_conn["cmd"] == "client|id"
        assert len(master_ports) == 1
    per_worker = sorted(len(ports) for ports in own.values())
    record_figure(f"{kind}_requests_served", result.served, record_property)
    record_figure(f"{kind}_errors", len(result.errors) + total - result.ok, record_property)
    record_figure(f"{kind}_req_per_s", round(result.rps), record_property)
    record_figure(f"{kind}_connections_per_worker_default", per_worker, record_property)


# -- the web benchmark -------------------------------------------------------------------------


@pytest.mark.slow
def test_web_bench_quick_run(record_property: Callable[[str, Any], None]) -> None:
    """bench/web_bench.py runs end to end (a smoke run: the figures of docs/production.md come
    from a full run). Its ratios are recorded, not asserted: timing belongs in bench/, and a
    busy CI machine must not fail a landing over a few microseconds."""
    repo = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    completed = subprocess.run(
        [sys.executable, str(repo / "bench" / "web_bench.py"), "--quick", "--json"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    output = completed.stdout
    assert "middleware overhead ratio" in output
    figures = json.loads(output[output.index("\n{") :])
    for section in ("in_process", "in_process_asgi", "http"):
        ratio = figures[section]["middleware_ratio"]
        record_figure(f"bench_quick_{section}_middleware_ratio", round(ratio, 3), record_property)
        if section != "in_process_asgi":
            commands = figures[section]["commands"]
            assert commands["pipelined"]["median"] > commands["per_command"]["median"]
    assert all(figures[s]["middleware_ratio"] > 0 for s in ("in_process", "http"))
