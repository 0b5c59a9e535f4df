"""The health report for every kind of connection, against real servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_conn import ConnectionRegistry
from redis_conn.health import exit_code
from redis_conn.health_text import render

try:
    from servers import ClusterDeployment, wait_until
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import ClusterDeployment, wait_until


@pytest.fixture
def registry() -> Iterator[ConnectionRegistry]:
    reg = ConnectionRegistry({"default": {"FAKE": True}})
    yield reg
    reg.close_all()


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["connections"]}


def test_standalone_unix_alias_fake_and_down(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {
            "default": {"URL": redis_server.url},
            "sock": {"URL": redis_server.unix_url, "BLOCKING": False, "MAX_CONNECTIONS": 3},
            "sessions": {"ALIAS": "default"},
            "dev": {"FAKE": True},
            "gone": {"URL": "redis://:pw-123@127.0.0.1:1/0", "RETRY": 0},
        }
    )
    report = registry.health()
    c = by_name(report)
    assert report["status"] == "degraded"
    assert exit_code(report) == 1
    default = c["default"]
    assert default["kind"] == "standalone" and default["status"] == "ok"
    assert default["error"] is None and default["ping_ms"] > 0
    # The probe has a connection of its own: the pool counts are the application's.
    assert default["pool"] == {
        "class": "BlockingConnectionPool",
        "max_connections": 50,
        "created": 0,
        "in_use": 0,
        "idle": 0,
    }
    assert default["server"]["version"].count(".") == 2
    assert default["server"]["role"] == "master"
    assert default["server"]["connected_clients"] >= 1
    assert default["server"]["used_memory"] > 0
    assert c["sessions"]["alias_of"] == "default"
    assert c["sessions"]["pool"] == default["pool"]
    assert c["sock"]["kind"] == "unix"
    assert c["sock"]["pool"]["class"] == "ConnectionPool"
    assert c["sock"]["target"] == redis_server.unix_url
    assert c["dev"]["kind"] == "fake" and c["dev"]["status"] == "ok"
    gone = c["gone"]
    assert gone["status"] == "down"
    assert gone["target"] == "redis://:***@127.0.0.1:1/0"
    assert "Connection refused" in gone["error"]
    text = json.dumps(report) + render(report)
    assert "pw-123" not in text


def test_all_ok_exits_zero_and_no_ping_opens_nothing(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": {"URL": redis_server.url}})
    report = registry.health(ping=False)
    assert report["status"] == "ok" and exit_code(report) == 0
    entry = report["connections"][0]
    assert entry["ping_ms"] is None and entry["server"] is None
    assert entry["pool"]["created"] == 0
    registry.get().incr("hits")  # the application's own use of the pool
    pinged = registry.health()["connections"][0]
    assert pinged["ping_ms"] > 0
    assert pinged["pool"] | {"class": None} == {
        "class": None,
        "max_connections": 50,
        "created": 1,
        "in_use": 0,
        "idle": 1,
    }


def test_a_full_pool_is_degraded(registry: ConnectionRegistry, redis_server: Any) -> None:
    registry.configure({"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 2}})
    pool = registry.get().connection_pool
    held = [pool.get_connection(), pool.get_connection()]
    report = registry.health(ping=False)
    entry = report["connections"][0]
    assert entry["status"] == "degraded"
    assert entry["error"] == "pool full: 2 of 2 in use"
    assert exit_code(report) == 0  # reachable, just busy
    for conn in held:
        pool.release(conn)


def test_selected_names(registry: ConnectionRegistry) -> None:
    registry.configure({"a": {"FAKE": True}, "b": {"FAKE": True}})
    assert [c["name"] for c in registry.health(names=["b"])["connections"]] == ["b"]


def test_cluster_summarises_every_node(registry: ConnectionRegistry, redis_cluster: Any) -> None:
    registry.configure({"cache": {"URL": redis_cluster.url, "CLUSTER": True}})
    registry.get("cache").set("x", 1)
    entry = registry.health()["connections"][0]
    assert entry["kind"] == "cluster" and entry["status"] == "ok", entry
    roles = sorted(node["role"] for node in entry["nodes"])
    assert roles.count("primary") == 3
    assert all(node["status"] == "ok" for node in entry["nodes"])
    assert entry["pool"]["max_connections"] == 50
    assert entry["pool"]["created"] >= 1
    assert entry["server"]["version"]


def test_sentinel_reports_the_primary(registry: ConnectionRegistry, redis_sentinel: Any) -> None:
    registry.configure(
        {"ha": {"SENTINELS": redis_sentinel.sentinels, "SERVICE_NAME": redis_sentinel.service_name}}
    )
    entry = registry.health()["connections"][0]
    assert entry["kind"] == "sentinel"
    assert entry["status"] == "ok", entry
    assert entry["server"]["role"] == "master"
    host, port = redis_sentinel.sentinels[0]
    assert entry["target"] == f"redis+sentinel://{host}:{port}/{redis_sentinel.service_name}"


def test_table_is_readable(registry: ConnectionRegistry, redis_server: Any) -> None:
    registry.configure({"default": {"URL": redis_server.url}, "s": {"ALIAS": "default"}})
    lines = render(registry.health()).splitlines()
    assert lines[0].split() == ["NAME", "KIND", "TARGET", "STATUS", "PING", "POOL", "SERVER"]
    assert lines[1].split()[:4] == ["default", "standalone", redis_server.url, "ok"]
    assert lines[2].split()[:3] == ["s", "->", "default"]
    assert lines[-1].startswith("overall: ok")


# -- a cluster that lost a primary -------------------------------------------------------------
# Once redis-py refreshed its view of the cluster, a dead primary was simply gone from the report
# and the connection said "ok". The report lists every node it knows of (the configured one, the
# client's view, and the nodes the cluster itself lists, failed ones included), says which do not
# answer, and the connection is degraded, or down if no node answers.


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterDeployment]:
    """A cluster of this module only: its primaries are killed."""
    cluster = ClusterDeployment(tmp_path_factory.mktemp("health_cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def failed_over(client: Any, victim: int) -> bool:
    """Every slot has a live owner again and the cluster marks the victim failed."""
    nodes = client.cluster_nodes()
    marked = "fail" in nodes.get(f"127.0.0.1:{victim}", {}).get("flags", "").split(",")
    for i in range(0, 300, 7):  # keys all over the slots; refreshes the client's view
        client.set(f"k{i}", i)
    return marked


@pytest.mark.slow
def test_cluster_health_after_a_primary_was_killed(private_cluster: ClusterDeployment) -> None:
    cluster = private_cluster
    cluster.wait_healthy()
    registry = ConnectionRegistry(
        {
            "cache": {
                "URL": cluster.url,
                "CLUSTER": True,
                "SOCKET_TIMEOUT": 1.0,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "RETRY": 0,
            }
        }
    )
    configured = cluster.nodes[0].port
    # The configured node itself, when it is a primary: the worst case.
    victim = configured if configured in cluster.primaries else cluster.primaries[0]
    try:
        client = registry.get("cache")
        client.set("x", 1)
        before = registry.health()["connections"][0]
        assert before["status"] == "ok", before
        assert sorted(n["node"] for n in before["nodes"]) == sorted(
            f"127.0.0.1:{n.port}" for n in cluster.nodes
        )
        cluster.node(victim).kill()
        wait_until(
            lambda: _quietly(lambda: failed_over(client, victim)),
            30,
            lambda: f"no failover of {victim}",
        )
        entry = registry.health()["connections"][0]
        nodes = {n["node"]: n for n in entry["nodes"]}
        assert entry["status"] == "degraded", entry
        assert sorted(nodes) == sorted(f"127.0.0.1:{n.port}" for n in cluster.nodes)
        dead = nodes[f"127.0.0.1:{victim}"]
        assert (dead["status"], dead["role"]) == ("down", "primary"), dead
        assert entry["error"].startswith(
            f"node 127.0.0.1:{victim} (primary, marked failed by the cluster) is down: "
            "ConnectionError: "
        ), entry["error"]
        assert [n for n in entry["nodes"] if n["status"] != "ok"] == [dead]
        assert exit_code(registry.health()) == 0  # degraded still serves: probes pass
        text = render(registry.health())
        assert f"cache: node 127.0.0.1:{victim} (primary, marked failed by the cluster)" in text

        for node in cluster.nodes:
            node.kill()
        entry = registry.health()["connections"][0]
        assert entry["status"] == "down", entry
        assert entry["error"].startswith("no node of the cluster answers: node 127.0.0.1:")
        assert {n["status"] for n in entry["nodes"]} == {"down"}
        assert exit_code(registry.health()) == 1
    finally:
        registry.close_all()
        for node in cluster.nodes:
            node.ensure_running()


def _quietly(condition: Any) -> Any:
    try:
        return condition()
    except redis.RedisError:
        return False
