"""How many sockets a connection holds on its server, from every process, and whether the
pools of all the workers fit in the server's ``maxclients``.

Each connection names its sockets (:mod:`redis_conn.naming`), so ``CLIENT LIST`` counts them
whatever process or host opened them. The budget is what the settings allow:
``MAX_CONNECTIONS`` x workers (a pool is per process, shared by its threads), added up over
every connection of the report that reaches the same server (same ``run_id``: a TCP and a
unix URL of one server count together), against that server's ``maxclients``.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from redis_conn.config import ConnectionSpec

#: Above this share of ``maxclients`` a budget makes the connection "degraded".
BUDGET_SHARE = 0.8
#: The setting (Django) or config key (Flask) saying how many worker processes run.
WORKERS_SETTING = "REDIS_CONN_WORKERS"
#: The environment variable gunicorn and uvicorn read for their number of workers.
WORKERS_ENVIRONMENT = "WEB_CONCURRENCY"


def known_workers(setting: object = None) -> int | None:
    """The number of worker processes, if known: the setting, else ``$WEB_CONCURRENCY``.

    ``None`` when neither says (or what it says is not a whole number >= 1).
    """
    if setting is not None:
        valid = isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1
        return setting if valid and isinstance(setting, int) else None
    value = os.environ.get(WORKERS_ENVIRONMENT, "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else None


@dataclass(frozen=True)
class ServerUse:
    """One server a connection reaches (a cluster: one per node)."""

    run_id: str
    address: str
    named: int | None  # sockets carrying the connection's name, None if CLIENT LIST is refused
    maxclients: int | None  # None if neither CONFIG GET nor INFO says


def server_uses(
    client: Any,
    spec: ConnectionSpec,
    *,
    info: dict[str, Any] | None = None,
    opened: Callable[[Any], AbstractContextManager[Any]] = nullcontext,
) -> list[ServerUse]:
    """Ask each server the connection reaches how many of its sockets carry its name.

    ``info``: the server's INFO if the caller has it already (not for a cluster).
    ``opened(client)``: the client to ask through, for each server's client (the health report
    passes its probe, so that asking never touches the application's pools).
    """
    if spec.kind != "cluster":
        with opened(client) as asked:
            return [_server_use(asked, spec, spec.target, info)]
    uses = []
    for node in client.get_nodes():
        if node.redis_connection is None:
            continue
        try:
            with opened(node.redis_connection) as asked:
                uses.append(_server_use(asked, spec, node.name, None))
        except Exception:  # a node that is down is reported as such with the nodes
            continue
    return uses


def _server_use(
    client: Any, spec: ConnectionSpec, address: str, info: dict[str, Any] | None
) -> ServerUse:
    if info is None:
        info = client.info()
    named: int | None = None
    if spec.client_name is not None:
        try:
            named = sum(1 for c in client.client_list() if c.get("name") == spec.client_name)
        except ResponseError:  # an ACL without +client|list: unknown, not an error
            named = None
    return ServerUse(str(info.get("run_id", address)), address, named, _maxclients(client, info))


def _maxclients(client: Any, info: dict[str, Any]) -> int | None:
    try:
        reply = client.config_get("maxclients")
        return int(reply["maxclients"])
    except (ResponseError, KeyError, ValueError):
        # CONFIG is often renamed or forbidden (managed services, ACLs); Redis 7 also says it
        # in INFO clients.
        value = info.get("maxclients")
        return int(value) if value is not None else None


def summarize(uses: list[ServerUse]) -> tuple[int | None, int | None]:
    """``server_connections`` and ``maxclients`` of a report entry.

    A cluster reports its busiest node's count and its smallest ``maxclients``.
    """
    named = [u.named for u in uses if u.named is not None]
    limits = [u.maxclients for u in uses if u.maxclients is not None]
    return (max(named) if named else None, min(limits) if limits else None)


@dataclass(frozen=True)
class BudgetCheck:
    """A connection's budget: the report's ``budget``, and the problem when over 80%."""

    budget: dict[str, Any]
    problem: str | None


def budgets(
    names: Iterable[str],
    specs: dict[str, ConnectionSpec],
    uses: dict[str, list[ServerUse]],
    workers: int,
) -> dict[str, BudgetCheck]:
    """The budget of each of ``names`` (owning connections); ``specs`` and ``uses`` cover
    every connection that shares a server with them."""
    per_server: dict[str, int] = defaultdict(int)
    for name, server_list in uses.items():
        for use in server_list:
            per_server[use.run_id] += per_process(specs[name]) * workers
    checks = {}
    for name in names:
        spec = specs[name]
        total = per_process(spec) * workers
        budget: dict[str, Any] = {
            "workers": workers,
            "max_connections": spec.max_connections,
            "total": total,
            "server_total": None,
            "maxclients": None,
            "percent": None,
        }
        problem = None
        worst = _worst(uses.get(name, []), per_server)
        if worst is not None:
            use, server_total = worst
            assert use.maxclients is not None
            percent = round(100 * server_total / use.maxclients, 1)
            budget.update(server_total=server_total, maxclients=use.maxclients, percent=percent)
            if server_total > BUDGET_SHARE * use.maxclients:
                problem = _over_budget(spec, workers, server_total, use, percent)
        checks[name] = BudgetCheck(budget, problem)
    return checks


def per_process(spec: ConnectionSpec) -> int:
    """The most connections one process opens for ``spec``: its pool, and CLIENT_CACHE's
    invalidation connection."""
    return spec.max_connections + (1 if spec.client_cache is not None else 0)


def _worst(uses: list[ServerUse], per_server: dict[str, int]) -> tuple[ServerUse, int] | None:
    known = [u for u in uses if u.maxclients]
    if not known:
        return None
    use = max(known, key=lambda u: per_server[u.run_id] / (u.maxclients or 1))
    return use, per_server[use.run_id]


def _over_budget(
    spec: ConnectionSpec, workers: int, server_total: int, use: ServerUse, percent: float
) -> str:
    assert use.maxclients is not None
    own = spec.max_connections * workers
    others = server_total - own
    allowed = BUDGET_SHARE * use.maxclients
    where = f" on {use.address}" if spec.kind == "cluster" else ""
    shared = f", {server_total} with the other connections to that server" if others else ""
    fits = math.floor((allowed - others) / workers)
    if fits >= 1:
        change = f"lower MAX_CONNECTIONS to {fits}, run fewer workers, or raise maxclients"
    else:
        change = (
            f"the other connections to that server already take {others} of the "
            f"{math.floor(allowed)} connections 80% allows: lower their MAX_CONNECTIONS, "
            "run fewer workers, or raise maxclients"
        )
    return (
        f"connection budget: {workers} workers x MAX_CONNECTIONS {spec.max_connections} = "
        f"{own} connections{shared}, {percent:g}% of maxclients {use.maxclients}{where} "
        f"(more than 80%); {change}"
    )
