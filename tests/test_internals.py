"""CONTRACT section 13: every redis-py internal redis_conn relies on, checked by name.

Each entry of :data:`redis_conn.internals.RELIED_ON` is looked up on the installed redis-py; a
release that drops or renames one fails here with a sentence naming it and what it is for,
before any user's command can fail on it. The other tests here check that the package itself
reaches those internals only through :mod:`redis_conn.internals`.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.client
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.connection

from redis_conn.internals import RELIED_ON, Reliance

PACKAGE = Path(__file__).resolve().parent.parent / "redis_conn"

# How to get an object whose instance attributes are checked (nothing connects).
INSTANCES: dict[str, Callable[[], Any]] = {
    "redis.connection.ConnectionPool": lambda: redis.connection.ConnectionPool(),
    "redis.asyncio.connection.ConnectionPool": lambda: redis.asyncio.connection.ConnectionPool(),
    "redis.connection.AbstractConnection": lambda: redis.connection.Connection(),
    "redis.asyncio.connection.AbstractConnection": lambda: redis.asyncio.connection.Connection(),
    # Made, never initialized: the asyncio cluster connects only on its first command.
    "redis.asyncio.cluster.RedisCluster": lambda: redis.asyncio.cluster.RedisCluster(
        host="127.0.0.1", port=1
    ),
    "redis.asyncio.cluster.NodesManager": lambda: (
        redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=1).nodes_manager
    ),
    "redis.asyncio.cluster.ClusterNode": lambda: redis.asyncio.cluster.ClusterNode("127.0.0.1", 1),
    "redis.asyncio.client.Pipeline": lambda: redis.asyncio.client.Pipeline(
        redis.asyncio.connection.ConnectionPool(), {}, True, None
    ),
}


def resolve(dotted: str) -> Any:
    """A module, or a class inside one, by its dotted name."""
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError:
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("reliance", RELIED_ON, ids=lambda r: f"{r.owner}.{r.name}")
def test_each_internal_redis_conn_relies_on_is_there(reliance: Reliance) -> None:
    owner = resolve(reliance.owner)
    target = INSTANCES[reliance.owner]() if reliance.instance else owner
    names = (reliance.name, *reliance.alternatives)
    for candidate in (target, INSTANCES.get(reliance.owner, lambda: target)()):
        if any(hasattr(candidate, name) for name in names):
            return
    pytest.fail(
        f"redis-py {redis.__version__} has no {reliance.owner}.{reliance.name}"
        + (f" (nor {', '.join(reliance.alternatives)})" if reliance.alternatives else "")
        + f", which redis_conn relies on: {reliance.why}. Adapt redis_conn/internals.py, or "
        "keep this release out of the range in pyproject.toml."
    )


# ``_lock`` is also the name of our own locks (pools, registry, pipelines): not searched for.
PRIVATE_REDIS_NAMES = {r.name for r in RELIED_ON if r.name.startswith("_")} - {"_sock", "_lock"}


def _private_uses(path: Path) -> list[str]:
    """``x._name`` for the redis-py private names of RELIED_ON, outside ``self._name =``
    assignments of our own pools' state."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_REDIS_NAMES:
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} .{node.attr}")
    return found


def test_only_the_internals_module_touches_redis_py_private_names() -> None:
    uses = [
        use
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "internals.py"
        for use in _private_uses(path)
    ]
    assert uses == []


def test_undocumented_redis_py_names_are_imported_through_the_internals_module() -> None:
    undocumented = {r.name for r in RELIED_ON if r.owner.count(".") <= 2 and r.name.isupper()}
    undocumented |= {"HiredisRespSerializer"}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "internals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").split(".")[0] == "redis"
                and any(alias.name in undocumented for alias in node.names)
            ):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert offenders == []
