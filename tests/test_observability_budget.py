"""The connection budget across processes: named sockets counted on the server, from every
worker, and MAX_CONNECTIONS x workers against ``maxclients``."""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_conn.budget import known_workers
from redis_conn.health_text import render
from redis_conn.registry import ConnectionRegistry

try:
    from servers import RedisServer
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import RedisServer

MAXCLIENTS = 20
HELD_PER_WORKER = 3

# A worker process: the same settings as the test, holding HELD_PER_WORKER pooled connections
# until its stdin closes.
WORKER = f"""
import json, sys
from redis_conn.registry import ConnectionRegistry

registry = ConnectionRegistry(json.loads(sys.argv[1]), client_name_prefix="shop")
pool = registry.get("jobs").connection_pool
held = [pool.get_connection() for _ in range({HELD_PER_WORKER})]
print("holding", len(held), flush=True)
sys.stdin.read()
for connection in held:
    pool.release(connection)
registry.close_all()
"""


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server that accepts only MAXCLIENTS clients, on TCP and a unix socket."""
    server = RedisServer(
        "small", tmp_path, unix_socket=True, extra_args=["--maxclients", str(MAXCLIENTS)]
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def registry() -> Iterator[ConnectionRegistry]:
    registry = ConnectionRegistry()
    yield registry
    registry.close_all()


def start_workers(settings: dict[str, Any], count: int) -> list[subprocess.Popen[str]]:
    """``count`` worker processes, each holding its connections once this returns."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for worker in workers:
        assert read_line(worker, timeout=30) == f"holding {HELD_PER_WORKER}"
    return workers


def read_line(process: subprocess.Popen[str], *, timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"worker {process.pid} said nothing within {timeout} s")
    return process.stdout.readline().strip()


def stop_workers(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.close()
    for worker in workers:
        assert worker.wait(timeout=30) == 0
        assert worker.stdout is not None
        worker.stdout.close()


@pytest.fixture
def two_workers(small_server: RedisServer) -> Iterator[dict[str, Any]]:
    settings = {"jobs": {"URL": small_server.url, "MAX_CONNECTIONS": 6}}
    workers = start_workers(settings, 2)
    try:
        yield settings
    finally:
        stop_workers(workers)


def test_two_worker_processes_are_counted_on_the_server_and_fit_the_budget(
    registry: ConnectionRegistry, two_workers: dict[str, Any]
) -> None:
    registry.configure(two_workers, client_name_prefix="shop")
    report = registry.health(workers=2)
    (entry,) = report["connections"]
    # 3 sockets in each worker, named shop:jobs; the report's own probe is shop:jobs:probe.
    assert entry["server_connections"] == 2 * HELD_PER_WORKER
    assert entry["maxclients"] == MAXCLIENTS
    assert entry["budget"] == {
        "workers": 2,
        "max_connections": 6,
        "total": 12,
        "server_total": 12,
        "maxclients": MAXCLIENTS,
        "percent": 60.0,
    }
    assert (entry["status"], entry["error"]) == ("ok", None)


def test_a_budget_over_80_percent_is_degraded_and_says_what_to_change(
    registry: ConnectionRegistry, two_workers: dict[str, Any]
) -> None:
    registry.configure(two_workers, client_name_prefix="shop")
    report = registry.health(workers=3)
    (entry,) = report["connections"]
    assert entry["server_connections"] == 2 * HELD_PER_WORKER
    assert entry["budget"]["percent"] == 90.0
    assert report["status"] == entry["status"] == "degraded"
    assert entry["error"] == (
        "connection budget: 3 workers x MAX_CONNECTIONS 6 = 18 connections, 90% of maxclients "
        "20 (more than 80%); lower MAX_CONNECTIONS to 5, run fewer workers, or raise maxclients"
    )
    lines = render(report).splitlines()
    assert lines[0].split() == [
        "NAME", "KIND", "TARGET", "STATUS", "PING", "POOL", "SERVER", "NAMED", "BUDGET"
    ]  # fmt: skip
    assert lines[1].split()[-3:] == ["6/20", "18", "(90%)"]
    assert lines[-1] == (
        "overall: degraded  (POOL = in use/created/max; NAMED = sockets with this name on the "
        "server/maxclients)"
    )


def test_connections_to_one_server_share_its_budget(
    registry: ConnectionRegistry, small_server: RedisServer
) -> None:
    registry.configure(
        {
            "jobs": {"URL": small_server.url, "MAX_CONNECTIONS": 4},
            "cache": {"URL": small_server.unix_url, "MAX_CONNECTIONS": 3},  # same server
            "cache2": {"ALIAS": "cache"},
        }
    )
    report = registry.health(workers=2)
    jobs, cache, alias = report["connections"]
    assert jobs["budget"]["server_total"] == cache["budget"]["server_total"] == 14
    assert alias["budget"] == cache["budget"]
    assert (jobs["budget"]["total"], cache["budget"]["total"]) == (8, 6)
    assert jobs["budget"]["percent"] == 70.0
    assert [(c["status"], c["error"]) for c in (jobs, cache)] == [("ok", None), ("ok", None)]
    report = registry.health(workers=3)
    jobs, cache, _ = report["connections"]
    assert jobs["budget"]["server_total"] == 21
    assert jobs["error"] == (
        "connection budget: 3 workers x MAX_CONNECTIONS 4 = 12 connections, 21 with the other "
        "connections to that server, 105% of maxclients 20 (more than 80%); lower "
        "MAX_CONNECTIONS to 2, run fewer workers, or raise maxclients"
    )
    assert cache["error"] == (
        "connection budget: 3 workers x MAX_CONNECTIONS 3 = 9 connections, 21 with the other "
        "connections to that server, 105% of maxclients 20 (more than 80%); lower "
        "MAX_CONNECTIONS to 1, run fewer workers, or raise maxclients"
    )


def test_servers_that_refuse_config_and_client_list(
    registry: ConnectionRegistry, small_server: RedisServer
) -> None:
    with small_server.probe_client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-config", "-client|list"
        )
    url = f"redis://app:pw@{small_server.host}:{small_server.port}/0"
    registry.configure({"jobs": {"URL": url, "MAX_CONNECTIONS": 9}})
    (entry,) = registry.health(workers=2)["connections"]
    assert entry["server_connections"] is None  # CLIENT LIST refused: unknown
    assert entry["maxclients"] == MAXCLIENTS  # CONFIG refused: INFO clients says it
    assert entry["budget"]["percent"] == 90.0
    assert entry["status"] == "degraded"


def test_without_names_pings_or_workers_the_fields_are_null(
    registry: ConnectionRegistry, small_server: RedisServer
) -> None:
    registry.configure({"jobs": {"URL": small_server.url, "CLIENT_NAME": False}})
    (entry,) = registry.health()["connections"]
    assert (entry["server_connections"], entry["maxclients"], entry["budget"]) == (
        None,
        MAXCLIENTS,
        None,
    )
    (entry,) = registry.health(ping=False, workers=2)["connections"]
    assert (entry["server_connections"], entry["maxclients"]) == (None, None)
    assert entry["budget"] == {
        "workers": 2,
        "max_connections": 50,
        "total": 100,
        "server_total": None,
        "maxclients": None,
        "percent": None,
    }
    assert entry["status"] == "ok"


def test_a_cluster_budget_is_per_node(registry: ConnectionRegistry, redis_cluster: Any) -> None:
    registry.configure(
        {"cache": {"URL": redis_cluster.url, "CLUSTER": True, "MAX_CONNECTIONS": 5}},
        client_name_prefix="budget-test",
    )
    registry.get("cache").ping(target_nodes=registry.get("cache").ALL_NODES)
    (entry,) = registry.health(workers=4)["connections"]
    assert entry["server_connections"] == 1  # the busiest node: one named socket
    assert entry["maxclients"] == 10000
    assert entry["budget"]["total"] == entry["budget"]["server_total"] == 20  # per node
    named = [node["server_connections"] for node in entry["nodes"]]
    assert named and all(n == 1 for n in named), entry["nodes"]


def test_workers_are_known_from_the_setting_or_web_concurrency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert known_workers() is None
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert known_workers() == 4
    assert known_workers(6) == 6  # the setting wins
    assert known_workers(0) is None
    monkeypatch.setenv("WEB_CONCURRENCY", "lots")
    assert known_workers() is None
