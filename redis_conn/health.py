"""The health report: one dict per connection, as ``--json`` prints it (CONTRACT section 5).

Each owning connection is checked once; its aliases repeat the result with ``alias_of`` set.
Targets and error texts are masked, so no password ever reaches a report.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from redis_conn.config import ConnectionSpec
from redis_conn.masking import connection_secrets, mask_text

if TYPE_CHECKING:
    from redis_conn.registry import ConnectionRegistry

#: A PING slower than this (milliseconds) makes a connection "degraded".
SLOW_PING_MS = 250.0
_SERVER_FACTS = ("redis_version", "role", "connected_clients", "used_memory")


def build_report(
    registry: ConnectionRegistry, *, ping: bool = True, names: Iterable[str] | None = None
) -> dict[str, Any]:
    wanted = list(names) if names is not None else registry.names()
    specs = [registry.spec(name) for name in wanted]
    checked: dict[str, dict[str, Any]] = {}
    entries = []
    for spec in specs:
        if spec.root not in checked:
            checked[spec.root] = check_connection(registry, registry.spec(spec.root), ping=ping)
        entry = dict(checked[spec.root])
        entry["name"], entry["alias_of"] = spec.name, spec.alias_of
        entries.append({"name": entry.pop("name"), "alias_of": entry.pop("alias_of"), **entry})
    return {"status": overall_status(e["status"] for e in entries), "connections": entries}


def overall_status(statuses: Iterable[str]) -> str:
    found = list(statuses)
    if all(s == "ok" for s in found):
        return "ok"
    if found and all(s == "down" for s in found):
        return "down"
    return "degraded"


def exit_code(report: dict[str, Any]) -> int:
    """0 when every connection is reachable, 1 otherwise (for scripts and probes)."""
    return 0 if all(c["status"] != "down" for c in report["connections"]) else 1


def check_connection(
    registry: ConnectionRegistry, spec: ConnectionSpec, *, ping: bool
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": spec.kind,
        "target": spec.target,
        "status": "ok",
        "error": None,
        "ping_ms": None,
        "pool": None,
        "server": None,
    }
    if spec.kind == "cluster":
        return _check_cluster(registry, spec, entry, ping=ping)
    problems: list[str] = []
    try:
        client = registry.get(spec.name)
        if ping:
            entry["ping_ms"] = _ping_ms(client)
            entry["server"] = _server_facts(client, spec)
            if entry["ping_ms"] > SLOW_PING_MS:
                problems.append(f"PING took {entry['ping_ms']:.0f} ms")
        entry["pool"], pool_problems = _pool_report(client, spec)
        problems.extend(pool_problems)
        role = (entry["server"] or {}).get("role")
        if spec.kind == "sentinel" and role not in (None, "master"):
            problems.append(f"sentinel primary answers as {role}")
    except Exception as exc:  # a report shows every failure; it never raises one
        entry["status"] = "down"
        entry["error"] = _describe(exc, spec)
        return entry
    if problems:
        entry["status"] = "degraded"
        entry["error"] = "; ".join(problems)
    return entry


def _describe(exc: BaseException, spec: ConnectionSpec) -> str:
    secrets = connection_secrets(spec.url, spec.options, spec.sentinel_kwargs)
    return mask_text(f"{type(exc).__name__}: {exc}", secrets)


def _ping_ms(client: Any) -> float:
    started = time.perf_counter()
    client.ping()
    return round((time.perf_counter() - started) * 1000, 3)


def _server_facts(client: Any, spec: ConnectionSpec) -> dict[str, Any]:
    if spec.kind == "fake":  # fakeredis has no INFO: say what it is
        from importlib.metadata import version

        return {
            "version": f"fakeredis {version('fakeredis')}",
            "role": "master",
            "connected_clients": None,
            "used_memory": None,
        }
    info = client.info()  # for a cluster, the client of one node
    facts = {key: info.get(key) for key in _SERVER_FACTS}
    facts["version"] = facts.pop("redis_version")
    return {"version": facts["version"], **{k: v for k, v in facts.items() if k != "version"}}


def _pool_report(client: Any, spec: ConnectionSpec) -> tuple[dict[str, Any], list[str]]:
    if spec.kind == "cluster":
        pools = [node.redis_connection.connection_pool for node in _nodes(client)]
    else:
        pools = [client.connection_pool]
    usages = [pool.usage() for pool in pools if hasattr(pool, "usage")]
    if not usages:  # fakeredis: an in-process server, no sockets to count
        return {
            "class": type(client.connection_pool).__name__,
            "max_connections": None,
            "created": None,
            "in_use": None,
            "idle": None,
        }, []
    report = {
        "class": usages[0].pool_class,
        "max_connections": usages[0].max_connections,
        "created": sum(u.created for u in usages),
        "in_use": sum(u.in_use for u in usages),
        "idle": sum(u.idle for u in usages),
    }
    full = [u for u in usages if u.in_use >= u.max_connections]
    problems = [f"pool full: {u.in_use} of {u.max_connections} in use" for u in full[:1]]
    return report, problems


def _nodes(client: Any) -> list[Any]:
    return [n for n in client.get_nodes() if n.redis_connection is not None]


# -- Redis Cluster ------------------------------------------------------------------------------
# redis-py's view of a cluster forgets a node once it stops serving slots: a dead primary would
# just vanish from the report. The report lists every node it knows of: the configured one,
# the client's view, and every node the cluster itself lists (failed ones included).

_ROLES = {"master": "primary", "slave": "replica"}


def _check_cluster(
    registry: ConnectionRegistry, spec: ConnectionSpec, entry: dict[str, Any], *, ping: bool
) -> dict[str, Any]:
    try:
        client = registry.get(spec.name)  # redis-py asks the configured node for the topology
        entry["pool"], problems = _pool_report(client, spec)
        nodes = _cluster_nodes(client, spec, ping=ping)
    except Exception as exc:  # a report shows every failure; it never raises one
        entry["status"] = "down"
        entry["error"] = _describe(exc, spec)
        return entry
    entry["nodes"] = [node.report for node in nodes]
    answering = [node for node in nodes if node.answered]
    down = [node.problem for node in nodes if node.problem is not None]
    if ping:
        if not answering:
            entry["status"] = "down"
            entry["error"] = "no node of the cluster answers: " + "; ".join(down)
            return entry
        entry["ping_ms"] = max(node.report["ping_ms"] for node in answering)
        primary = next((n for n in answering if n.report["role"] == "primary"), answering[0])
        try:
            entry["server"] = _server_facts(primary.client, spec)
        except Exception as exc:
            down.append(f"node {primary.name} does not answer INFO: {_describe(exc, spec)}")
        if entry["ping_ms"] > SLOW_PING_MS:
            problems.append(f"PING took {entry['ping_ms']:.0f} ms")
    problems = down + problems
    if problems:
        entry["status"] = "degraded"
        entry["error"] = "; ".join(problems)
    return entry


class _Node:
    """One node of the report, checked with the client's own connection to it if it has one,
    else with a short-lived client made the way redis-py makes its node clients."""

    def __init__(self, name: str, role: str, flags: list[str]) -> None:
        self.name, self.flags = name, flags
        self.cluster_role: str | None = None  # from CLUSTER NODES
        self.client: Any = None
        self.report: dict[str, Any] = {"node": name, "role": role, "status": "ok"}
        self.answered = False
        self.problem: str | None = None

    def check(self, cluster: Any, spec: ConnectionSpec) -> None:
        own = self.client is None
        if own:
            host, _, port = self.name.rpartition(":")
            manager = cluster.nodes_manager
            self.client = manager.create_redis_node(host, int(port), **manager.connection_kwargs)
        try:
            self.report["ping_ms"] = _ping_ms(self.client)
            self.answered = True
            # A node's own word on its role; the cluster's gossip and redis-py's view lag.
            with contextlib.suppress(Exception):  # e.g. an ACL user without ROLE
                role = self.client.execute_command("ROLE")[0]
                role = role.decode() if isinstance(role, bytes) else str(role)
                self.report["role"] = _ROLES.get(role, self.report["role"])
        except Exception as exc:
            if self.cluster_role is not None:  # what the cluster last knew it as
                self.report["role"] = self.cluster_role
            error = _describe(exc, spec)
            failed = ", marked failed by the cluster" if "fail" in self.flags else ""
            self.report.update(status="down", error=error)
            self.problem = f"node {self.name} ({self.report['role']}{failed}) is down: {error}"
        finally:
            if own:
                self.client.close()


def _cluster_nodes(cluster: Any, spec: ConnectionSpec, *, ping: bool) -> list[_Node]:
    nodes: dict[str, _Node] = {}
    for node in cluster.get_nodes():
        item = nodes[node.name] = _Node(node.name, node.server_type, [])
        item.client = node.redis_connection
        pool = node.redis_connection.connection_pool if node.redis_connection else None
        if pool is not None and hasattr(pool, "usage"):
            usage = pool.usage()
            item.report["in_use"], item.report["created"] = usage.in_use, usage.created
    if ping:
        for name, info in _cluster_view(cluster).items():
            flags = [f for f in str(info.get("flags", "")).split(",") if f != "myself"]
            role = next((_ROLES[f] for f in flags if f in _ROLES), "unknown")
            if name not in nodes:
                nodes[name] = _Node(name, role, flags)
            nodes[name].flags = flags
            nodes[name].cluster_role = role if role != "unknown" else None
    for startup in cluster.nodes_manager.startup_nodes.values():
        if startup.name not in nodes:
            nodes[startup.name] = _Node(startup.name, "configured", [])
    if ping:
        for node in nodes.values():
            node.check(cluster, spec)
    return sorted(nodes.values(), key=lambda n: n.name)


def _cluster_view(cluster: Any) -> dict[str, Any]:
    """CLUSTER NODES of the first node that answers: every node the cluster knows, with its
    flags (``fail``: the cluster agreed it is down)."""
    for node in cluster.get_nodes():
        if node.redis_connection is None:
            continue
        try:
            view = node.redis_connection.cluster("NODES")  # parsed by redis-py
        except Exception:  # the next node may answer
            continue
        if not isinstance(view, dict):
            continue
        # A node without an address yet (``:0``) cannot be checked.
        return {name: info for name, info in view.items() if not name.endswith(":0")}
    return {}


def render(report: dict[str, Any], *, as_json: bool = False) -> str:
    """The report as the CLIs print it: JSON, or a table a person reads at a glance."""
    if as_json:
        import json

        return json.dumps(report, indent=2)
    header = ("NAME", "KIND", "TARGET", "STATUS", "PING", "POOL", "SERVER")
    rows = [header]
    for c in report["connections"]:
        name = c["name"] if c["alias_of"] is None else f"{c['name']} -> {c['alias_of']}"
        ping = "-" if c["ping_ms"] is None else f"{c['ping_ms']:.2f}ms"
        pool = c["pool"]
        if pool is None or pool["max_connections"] is None:
            pool_text = "-"
        else:
            pool_text = f"{pool['in_use']}/{pool['created']}/{pool['max_connections']}"
        server = c["server"] or {}
        server_text = " ".join(
            str(v) for v in (server.get("version"), server.get("role")) if v is not None
        )
        rows.append(
            (name, c["kind"], c["target"], c["status"], ping, pool_text, server_text or "-")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for c in report["connections"]:
        if c["error"]:
            lines.append(f"{c['name']}: {c['error']}")
    lines.append(f"overall: {report['status']}  (POOL = in use/created/max)")
    return "\n".join(lines)
