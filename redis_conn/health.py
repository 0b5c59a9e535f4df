"""The health report: one dict per connection, as ``--json`` prints it (CONTRACT section 5).

Each owning connection is checked once; its aliases repeat the result with ``alias_of`` set.
Targets and error texts are masked, so no password ever reaches a report.
"""

from __future__ import annotations

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
        if spec.kind == "cluster":
            entry["nodes"], node_problems = _cluster_nodes(client, ping=ping)
            problems.extend(node_problems)
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
    if spec.kind == "cluster":
        info = client.info(target_nodes=client.get_default_node())
    else:
        info = client.info()
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


def _cluster_nodes(client: Any, *, ping: bool) -> tuple[list[dict[str, Any]], list[str]]:
    nodes, problems = [], []
    for node in client.get_nodes():
        item: dict[str, Any] = {"node": node.name, "role": node.server_type, "status": "ok"}
        pool = node.redis_connection.connection_pool if node.redis_connection else None
        if pool is not None and hasattr(pool, "usage"):
            usage = pool.usage()
            item["in_use"], item["created"] = usage.in_use, usage.created
        if ping:
            try:
                item["ping_ms"] = _ping_ms(node.redis_connection)
            except Exception as exc:
                item["status"] = "down"
                item["error"] = mask_text(f"{type(exc).__name__}: {exc}")
                problems.append(f"node {node.name} ({node.server_type}) is down")
        nodes.append(item)
    return nodes, problems


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
