"""The health report: one dict per connection, as ``--json`` prints it (CONTRACT section 5).

Each owning connection is checked once; its aliases repeat the result with ``alias_of`` set.
Targets and error texts are masked, so no password ever reaches a report. With ``workers``
each connection also gets its connection budget across processes (:mod:`redis_conn.budget`).

A probe (PING, then INFO) runs on a connection of its own, opened for it and closed after it,
never through the connection's pool and never retried: one attempt, connect and reply each
bounded by ``SOCKET_CONNECT_TIMEOUT``. A probe therefore says at once that a stopped server is
down (``RETRY`` would make it wait out the backoff), is not delayed by a full pool (which it
reports as ``degraded``), and is not fooled by a stale pooled socket; the pool counts in the
report are the application's own, untouched by the probe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_conn import messages
from redis_conn.async_cluster_nodes import node_usages
from redis_conn.budget import ServerUse, budgets, server_uses, summarize
from redis_conn.config import DEFAULTS, ConnectionSpec
from redis_conn.masking import connection_secrets, mask_text
from redis_conn.pools import PoolUsage

#: A PING slower than this (milliseconds) makes a connection "degraded".
SLOW_PING_MS = 250.0
_SERVER_FACTS = ("redis_version", "role", "connected_clients", "used_memory")


Status = Literal["ok", "degraded", "down"]


@dataclass
class ConnectionHealth:
    """One connection's entry of the report; :meth:`asdict` is what ``--json`` prints.

    Checks report what they find through :meth:`degrade` (reachable, with a problem) and
    :meth:`down` (unreachable): the status is decided there and nowhere else.
    """

    name: str
    alias_of: str | None
    kind: str
    target: str
    status: Status = "ok"
    error: str | None = None
    ping_ms: float | None = None
    pool: dict[str, Any] | None = None
    server: dict[str, Any] | None = None
    server_connections: int | None = None
    maxclients: int | None = None
    budget: dict[str, Any] | None = None
    mode: Literal["pooled", "multiplexed"] = "pooled"
    multiplex: dict[str, int] | None = None
    #: CLIENT_CACHE's counts in this process (CONTRACT section 11); None when off.
    client_cache: dict[str, Any] | None = None
    nodes: list[dict[str, Any]] | None = None  # a cluster's nodes; absent from the JSON otherwise

    def degrade(self, reason: str) -> None:
        """A problem that leaves the connection reachable; a connection down stays down."""
        if self.status == "down":
            return
        self.status = "degraded"
        self.error = reason if not self.error else f"{self.error}; {reason}"

    def down(self, reason: str) -> None:
        """The connection cannot be used: ``reason`` says why."""
        self.status = "down"
        self.error = reason

    def asdict(self) -> dict[str, Any]:
        """The entry as ``--json`` prints it (keys in this order)."""
        entry = dataclasses.asdict(self)
        if self.nodes is None:
            del entry["nodes"]
        return entry


class Connections(Protocol):
    """What the report reads of a set of named connections: a
    :class:`~redis_conn.registry.ConnectionRegistry` (the registry calls the report, the
    report never imports the registry)."""

    def names(self) -> list[str]:
        """Every configured name, aliases included."""
        ...

    def spec(self, name: str) -> ConnectionSpec:
        """The checked settings of ``name``."""
        ...

    def get(self, name: str) -> Any:
        """The shared sync client of ``name``."""
        ...

    def created_async_clients(self) -> Iterable[tuple[str, Any]]:
        """The asyncio clients of every live event loop, by owning connection name."""
        ...

    def client_cache(self, name: str) -> Any:
        """``name``'s :class:`~redis_conn.client_cache.ClientCache`, or None when off."""
        ...


def build_report(
    registry: Connections,
    *,
    ping: bool = True,
    names: Iterable[str] | None = None,
    workers: int | None = None,
    sockets: bool = True,
) -> dict[str, Any]:
    """The report of ``names`` (default: all); ``workers``: the processes sharing the settings.

    ``sockets``: also ask each server for the sockets named after the connection and its
    maxclients (CLIENT LIST, CONFIG GET); a probe that runs every few seconds skips it.
    """
    wanted = list(names) if names is not None else registry.names()
    specs = [registry.spec(name) for name in wanted]
    checked: dict[str, ConnectionHealth] = {}
    uses: dict[str, list[ServerUse]] = {}
    for spec in specs:
        if spec.root not in checked:
            root = registry.spec(spec.root)
            checked[spec.root], uses[spec.root] = _check(registry, root, ping=ping, sockets=sockets)
    if workers is not None:
        roots = {name: registry.spec(name) for name in checked}
        if ping and sockets:
            # A budget is per server: the connections left out of this report (--connection)
            # take their share of its maxclients all the same.
            for name in registry.names():
                root = registry.spec(registry.spec(name).root)
                if root.name not in uses:
                    roots[root.name], uses[root.name] = root, _server_uses_of(registry, root)
        for name, check in budgets(checked, roots, uses, workers).items():
            checked[name].budget = check.budget
            if check.problem is not None:
                checked[name].degrade(check.problem)
    entries = [
        dataclasses.replace(checked[spec.root], name=spec.name, alias_of=spec.alias_of).asdict()
        for spec in specs
    ]
    return {"status": overall_status(e["status"] for e in entries), "connections": entries}


def _server_uses_of(registry: Connections, spec: ConnectionSpec) -> list[ServerUse]:
    """The servers a connection outside the report reaches; none if it cannot be asked."""
    if spec.kind == "fake":
        return []
    try:
        return server_uses(registry.get(spec.name), spec, opened=_probing)
    except Exception:  # down or refused: the report of that connection would say why
        return []


def overall_status(statuses: Iterable[str]) -> str:
    found = list(statuses)
    if all(s == "ok" for s in found):
        return "ok"
    if found and all(s == "down" for s in found):
        return "down"
    return "degraded"


def public_report(report: dict[str, Any]) -> dict[str, Any]:
    """What a health view shows anyone: the statuses, no targets, errors, pools or servers."""
    return {
        "status": report["status"],
        "connections": [{"name": c["name"], "status": c["status"]} for c in report["connections"]],
    }


def exit_code(report: dict[str, Any]) -> int:
    """0 when every connection is reachable, 1 otherwise (for scripts and probes)."""
    return 0 if all(c["status"] != "down" for c in report["connections"]) else 1


def _check(
    registry: Connections, spec: ConnectionSpec, *, ping: bool, sockets: bool = True
) -> tuple[ConnectionHealth, list[ServerUse]]:
    entry = ConnectionHealth(
        name=spec.name,
        alias_of=spec.alias_of,
        kind=spec.kind,
        target=spec.target,
        mode="multiplexed" if spec.multiplex else "pooled",
        multiplex=_multiplex_report(spec),
    )
    if spec.kind == "cluster":
        return _check_cluster(registry, spec, entry, ping=ping, sockets=sockets)
    uses: list[ServerUse] = []
    problems: list[str] = []
    try:
        client = registry.get(spec.name)
        if ping:
            entry.ping_ms, entry.server, info = _probe_server(client, spec)
            if entry.ping_ms > SLOW_PING_MS:
                problems.append(f"PING took {entry.ping_ms:.0f} ms")
            if sockets and spec.kind != "fake":
                uses = server_uses(client, spec, info=info, opened=_probing)
                entry.server_connections, entry.maxclients = summarize(uses)
        entry.pool, pool_problems = _pool_report(client, spec, _async_usages(registry, spec))
        problems.extend(pool_problems)
        cache = registry.client_cache(spec.name)
        if cache is not None:
            entry.client_cache = cache.report()
            if not cache.listening:
                problems.append(cache.not_listening_reason())
        role = (entry.server or {}).get("role")
        if spec.kind == "sentinel" and role not in (None, "master"):
            problems.append(f"sentinel primary answers as {role}")
    except Exception as exc:  # a report shows every failure; it never raises one
        entry.down(_describe(exc, spec))
        return entry, []
    for problem in problems:
        entry.degrade(problem)
    return entry, uses


def _multiplex_report(spec: ConnectionSpec) -> dict[str, int] | None:
    """The asyncio shared connections of a MULTIPLEX connection, in this process."""
    if not spec.multiplex:
        return None
    from redis_conn.multiplex import usage

    return dataclasses.asdict(usage(spec))


def _describe(exc: BaseException, spec: ConnectionSpec) -> str:
    secrets = connection_secrets(spec.url, spec.options, spec.sentinel_kwargs)
    # The probe's own connection raises errors that are not prefixed yet.
    message = messages.prefixed(spec.root, str(exc))
    return mask_text(f"{type(exc).__name__}: {message}", secrets)


@contextmanager
def probe(pool: Any) -> Iterator[redis.Redis]:
    """A client on one new connection to ``pool``'s server, with the same settings but no
    retries and every wait bounded by the connect timeout; closed on exit. ``pool`` is only
    read (its connection class and keyword arguments), never used."""
    kwargs = dict(pool.connection_kwargs)
    if kwargs.get("client_name"):  # named apart, so that it is never counted as the app's
        kwargs["client_name"] = f"{kwargs['client_name']}:probe"
    bound = kwargs.get("socket_connect_timeout") or DEFAULTS["SOCKET_CONNECT_TIMEOUT"]
    kwargs.update(retry=Retry(NoBackoff(), 0), socket_timeout=bound, socket_connect_timeout=bound)
    own = redis.ConnectionPool(connection_class=pool.connection_class, max_connections=1, **kwargs)
    try:
        # Connect first, so that ping_ms is the PING's round trip, not the handshake.
        own.release(own.get_connection())
        yield redis.Redis(connection_pool=own)
    finally:
        own.disconnect()


def _ping_ms(client: Any) -> float:
    started = time.perf_counter()
    client.ping()
    return round((time.perf_counter() - started) * 1000, 3)


def _probing(client: Any) -> contextlib.AbstractContextManager[redis.Redis]:
    return probe(client.connection_pool)


def _probe_server(
    client: Any, spec: ConnectionSpec
) -> tuple[float, dict[str, Any], dict[str, Any] | None]:
    """PING time, server facts and INFO, from a probe connection (fakeredis: the client
    itself, and no INFO)."""
    if spec.kind == "fake":  # in-process: no socket to probe, and no INFO; say what it is
        from importlib.metadata import version

        facts = {
            "version": f"fakeredis {version('fakeredis')}",
            "role": "master",
            "connected_clients": None,
            "used_memory": None,
        }
        return _ping_ms(client), facts, None
    with probe(client.connection_pool) as server:  # for a cluster, the client of one node
        ping_ms = _ping_ms(server)
        info: dict[str, Any] = server.info()
        return ping_ms, _server_facts(info), info


def _server_facts(info: dict[str, Any]) -> dict[str, Any]:
    facts = {key: info.get(key) for key in _SERVER_FACTS}
    facts["version"] = facts.pop("redis_version")
    return {"version": facts["version"], **{k: v for k, v in facts.items() if k != "version"}}


def _async_usages(registry: Connections, spec: ConnectionSpec) -> list[PoolUsage]:
    """The asyncio pools of a connection in this process: one per event loop that used it
    (an asyncio cluster client: one per node and event loop).

    The Django cache's async methods and async views hold their sockets there, not in the
    sync pool.
    """
    usages: list[PoolUsage] = []
    for name, client in registry.created_async_clients():
        if name != spec.root:
            continue
        nodes = node_usages(client)
        pool = getattr(client, "connection_pool", None)
        if nodes is not None:
            usages.extend(nodes)
        elif pool is not None and hasattr(pool, "usage"):
            usages.append(pool.usage())
    return usages


def _pool_report(
    client: Any, spec: ConnectionSpec, async_usages: list[PoolUsage]
) -> tuple[dict[str, Any], list[str]]:
    """The sync pool (a cluster: one per node) and the asyncio ones, counted together."""
    if spec.kind == "cluster":
        pools = [node.redis_connection.connection_pool for node in _nodes(client)]
    else:
        pools = [client.connection_pool]
    usages = [pool.usage() for pool in pools if hasattr(pool, "usage")]
    if not usages and not async_usages:  # fakeredis: an in-process server, no sockets to count
        return {
            "class": type(client.connection_pool).__name__,
            "max_connections": None,
            "created": None,
            "in_use": None,
            "idle": None,
        }, []
    every = usages + async_usages
    report: dict[str, Any] = {
        "class": every[0].behaves_like,
        "max_connections": every[0].max_connections,
        "created": sum(u.created for u in every),
        "in_use": sum(u.in_use for u in every),
        "idle": sum(u.idle for u in every),
    }
    if async_usages:  # included in the counts above; each loop's pool has MAX_CONNECTIONS
        report["asyncio"] = {
            "pools": len(async_usages),
            "created": sum(u.created for u in async_usages),
            "in_use": sum(u.in_use for u in async_usages),
        }
    labelled = [("", u) for u in usages] + [("asyncio ", u) for u in async_usages]
    full = [
        f"{label}pool full: {u.in_use} of {u.max_connections} in use"
        for label, u in labelled
        if u.in_use >= u.max_connections
    ]
    return report, full[:1]


def _nodes(client: Any) -> list[Any]:
    return [n for n in client.get_nodes() if n.redis_connection is not None]


# -- Redis Cluster ------------------------------------------------------------------------------
# redis-py's view of a cluster forgets a node once it stops serving slots: a dead primary would
# just vanish from the report. The report lists every node it knows of: the configured one,
# the client's view, and every node the cluster itself lists (failed ones included).

_ROLES = {"master": "primary", "slave": "replica"}


def _check_cluster(
    registry: Connections,
    spec: ConnectionSpec,
    entry: ConnectionHealth,
    *,
    ping: bool,
    sockets: bool,
) -> tuple[ConnectionHealth, list[ServerUse]]:
    uses: list[ServerUse] = []
    try:
        client = registry.get(spec.name)  # redis-py asks the configured node for the topology
        entry.pool, problems = _pool_report(client, spec, _async_usages(registry, spec))
        nodes = _cluster_nodes(client, spec, ping=ping)
        if ping and sockets:
            uses = server_uses(client, spec, opened=_probing)
            entry.server_connections, entry.maxclients = summarize(uses)
    except Exception as exc:  # a report shows every failure; it never raises one
        entry.down(_describe(exc, spec))
        return entry, []
    by_node = {use.address: use for use in uses}
    for node in nodes:
        use = by_node.get(node.name)
        if use is not None:
            node.report["server_connections"], node.report["maxclients"] = use.named, use.maxclients
    entry.nodes = [node.report for node in nodes]
    answering = [node for node in nodes if node.answered]
    down = [node.problem for node in nodes if node.problem is not None]
    if ping:
        if not answering:
            entry.down("no node of the cluster answers: " + "; ".join(down))
            return entry, uses
        entry.ping_ms = max(node.report["ping_ms"] for node in answering)
        primary = next((n for n in answering if n.report["role"] == "primary"), answering[0])
        if primary.info is not None:
            entry.server = _server_facts(primary.info)
        if entry.ping_ms > SLOW_PING_MS:
            problems.append(f"PING took {entry.ping_ms:.0f} ms")
    for problem in down + problems:
        entry.degrade(problem)
    return entry, uses


class _Node:
    """One node of the report, checked with a probe (one attempt, never through the pool)
    on the client's node settings, or those redis-py would give a node it does not use."""

    def __init__(self, name: str, role: str, flags: list[str]) -> None:
        self.name, self.flags = name, flags
        self.cluster_role: str | None = None  # from CLUSTER NODES
        self.client: Any = None
        self.report: dict[str, Any] = {"node": name, "role": role, "status": "ok"}
        self.answered = False
        self.info: dict[str, Any] | None = None
        self.problem: str | None = None

    def check(self, cluster: Any, spec: ConnectionSpec) -> None:
        own = self.client is None
        if own:
            host, _, port = self.name.rpartition(":")
            manager = cluster.nodes_manager
            self.client = manager.create_redis_node(host, int(port), **manager.connection_kwargs)
        try:
            with probe(self.client.connection_pool) as server:
                self.report["ping_ms"] = _ping_ms(server)
                self.answered = True
                with contextlib.suppress(Exception):
                    self.info = server.info()
                # A node's own word on its role; the cluster's gossip and redis-py's view lag.
                with contextlib.suppress(Exception):  # e.g. an ACL user without ROLE
                    role = server.execute_command("ROLE")[0]  # type: ignore[no-untyped-call]
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
    if spec.multiplex:
        _node_multiplex_report(spec, nodes)
    return sorted(nodes.values(), key=lambda n: n.name)


def _node_multiplex_report(spec: ConnectionSpec, nodes: dict[str, _Node]) -> None:
    """MULTIPLEX on a cluster: each node's shared connections in this process."""
    from redis_conn.multiplex import MultiplexUsage, usage_by_node

    idle = MultiplexUsage(event_loops=0, connected=0, in_flight=0, reconnects=0)
    by_node = usage_by_node(spec)
    for name in by_node.keys() - nodes.keys():  # a node the slot map no longer has
        nodes[name] = _Node(name, "unknown", [])
    for name, node in nodes.items():
        node.report["mode"] = "multiplexed"
        node.report["multiplex"] = dataclasses.asdict(by_node.get(name, idle))


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
