"""The import graph of ``redis_conn/`` has no circle (issue 20), read from the sources.

Every import counts: module level, inside a function (an import moved into a function to
dodge a circle at run time still ties the two modules together), and under ``TYPE_CHECKING``
(a type names what a module depends on). Importing ``a.b`` is an edge to ``a.b`` only, not to
the packages above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "redis_conn"


def module_names() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (path, whether it is a package's ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports, anywhere."""
    modules = module_names()
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = parts[: len(parts) - node.level + 1]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in modules:  # from redis_conn import metrics
                        imported.add(submodule)
                    elif source in modules:
                        imported.add(source)
        imported.discard(name)
        graph[name] = imported
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe(graph: dict[str, set[str]], circle: frozenset[str]) -> str:
    edges = [f"  {a} -> {b}" for a in sorted(circle) for b in sorted(graph[a] & circle)]
    return "\n".join([", ".join(sorted(circle)), *edges])


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "redis_conn.clients" in graph["redis_conn.registry"]  # module level
    # function-local: metrics imports otel inside _resolve(), and otel not metrics back
    assert "redis_conn.otel" in graph["redis_conn.metrics"]
    assert "redis_conn.metrics" not in graph["redis_conn.otel"]
    # TYPE_CHECKING: metrics names the spec in its hints only
    assert "redis_conn.config" in graph["redis_conn.metrics"]
    # "from redis_conn import messages" is the module, not the package
    assert "redis_conn.messages" in graph["redis_conn.guarded"]
    assert "redis_conn" not in graph["redis_conn.guarded"]
    # and the circle finder finds a circle of three, not the module that only leads into it
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]


def test_the_import_graph_has_no_circle() -> None:
    graph = import_graph()
    found = circles(graph)
    assert not found, "import circles:\n" + "\n".join(describe(graph, c) for c in found)


def test_the_sync_and_async_pools_share_one_lease_table() -> None:
    """Issue 20 item 3: the lease table lives on ``NamedPool``; the two pools differ only in
    how they wait and give back (the sync one adds its lease holder and its lock)."""
    from redis_conn.async_pools import AsyncGuardedPool
    from redis_conn.pools import GuardedPool, NamedPool

    shared = (
        "_forget_leases",
        "lent_connections",
        "_is_lent",
        "_free_places",
        "_create",
        "_next_waiter",
        "_grant_free_places",
        "_exhausted",
    )
    for name in shared:
        assert name in vars(NamedPool), name
        assert name not in vars(GuardedPool), f"GuardedPool copies {name}"
        assert name not in vars(AsyncGuardedPool), f"AsyncGuardedPool copies {name}"
    assert "usage" not in vars(AsyncGuardedPool)  # the sync pool's only takes its lock
