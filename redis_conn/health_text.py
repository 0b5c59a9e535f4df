"""The health report as the CLIs print it: JSON, or a table a person reads at a glance.

Both ``manage.py redis_pools`` and ``flask redis pools`` print :func:`render` of the report
that :mod:`redis_conn.health` builds (``connections.health()``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["render"]


def render(report: dict[str, Any], *, as_json: bool = False) -> str:
    """The report as the CLIs print it: JSON, or a table a person reads at a glance.

    With a budget (``--workers``) the table has two more columns: the sockets named after
    the connection on its server (every process) of ``maxclients``, and the budget.
    """
    if as_json:
        return json.dumps(report, indent=2)
    budgets = any(c.get("budget") for c in report["connections"])
    header: tuple[str, ...] = ("NAME", "KIND", "TARGET", "STATUS", "PING", "POOL", "SERVER")
    if budgets:
        header += ("NAMED", "BUDGET")
    rows: list[tuple[str, ...]] = [header]
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
        row: tuple[str, ...] = (
            name,
            c["kind"],
            c["target"],
            c["status"],
            ping,
            pool_text,
            server_text or "-",
        )
        if budgets:
            row += (_named_text(c), _budget_text(c.get("budget")))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for c in report["connections"]:
        if c["error"]:
            lines.append(f"{c['name']}: {c['error']}")
    for c in report["connections"]:  # Django's report: the CACHES aliases on each connection
        if c.get("caches"):
            lines.append(f"{c['name']}: used by CACHES {', '.join(map(repr, c['caches']))}")
    for c in report["connections"]:
        asyncio_pools = (c["pool"] or {}).get("asyncio")
        if asyncio_pools and c["alias_of"] is None:
            pools = asyncio_pools["pools"]
            where = (  # a cluster's asyncio client has a pool per node, in each event loop
                f"in {pools} node pool(s) (one per node and event loop)"
                if c.get("nodes")
                else f"in the pools of {pools} event loop(s)"
            )
            lines.append(
                f"{c['name']}: POOL counts {asyncio_pools['created']} asyncio connection(s) "
                f"({asyncio_pools['in_use']} in use) {where}"
            )
    for c in report["connections"]:
        mux = c.get("multiplex")  # MULTIPLEX is the default: said once an event loop used it
        if mux is not None and mux["event_loops"] and c["alias_of"] is None:
            lines.append(
                f"{c['name']}: multiplexed (asyncio): {mux['in_flight']} in flight on "
                f"{mux['connected']} shared connection(s) of {mux['event_loops']} event "
                f"loop(s), {mux['reconnects']} reconnect(s)"
            )
            for node in c.get("nodes") or ():
                shared = node.get("multiplex")
                if shared is not None:
                    lines.append(
                        f"{c['name']}: node {node['node']}: {shared['in_flight']} in flight on "
                        f"{shared['connected']} shared connection(s), "
                        f"{shared['reconnects']} reconnect(s)"
                    )
    for c in report["connections"]:
        cache = c.get("client_cache")
        if cache is not None and c["alias_of"] is None:
            state = "listening" if cache["listening"] else "NOT listening (serving nothing)"
            lines.append(
                f"{c['name']}: client cache {state}: {cache['entries']} entries, "
                f"{cache['bytes']} bytes, {cache['hits']} hits, {cache['misses']} misses, "
                f"{cache['invalidations']} invalidations, {cache['flushes']} flushes"
            )
    legend = "POOL = in use/created/max"
    if budgets:
        legend += "; NAMED = sockets with this name on the server/maxclients"
    lines.append(f"overall: {report['status']}  ({legend})")
    return "\n".join(lines)


def _named_text(entry: dict[str, Any]) -> str:
    named, limit = entry.get("server_connections"), entry.get("maxclients")
    if named is None and limit is None:
        return "-"
    return f"{'?' if named is None else named}/{'?' if limit is None else limit}"


def _budget_text(budget: dict[str, Any] | None) -> str:
    if not budget:
        return "-"
    if budget["percent"] is None:
        return f"{budget['total']}"
    return f"{budget['server_total']} ({budget['percent']:g}%)"
