"""Typed views and typed getters: ``mypy --strict`` with django-stubs, and the getters at run time.

One mypy run checks the example Django site (it must be clean) and ``tests/typing_cases.py``,
whose comments say which error or ``reveal_type`` note each line must get.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

import redis_conn

ROOT = Path(__file__).resolve().parent.parent
CASES = Path("tests/typing_cases.py")
EXPECTED = re.compile(r"^\s*# (?P<kind>[EN]): (?P<text>.+)$")
MESSAGE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<text>.+)$")


@pytest.fixture(scope="module")
def mypy_messages() -> list[tuple[str, int, str, str]]:
    """(file, line, "E" or "N", text) of every message of one mypy run."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "example_django", str(CASES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    messages = []
    for line in done.stdout.splitlines():
        match = MESSAGE.match(line)
        if match:
            kind = "E" if match["kind"] == "error" else "N"
            messages.append((match["file"], int(match["line"]), kind, match["text"]))
    assert messages or done.returncode == 0, done.stdout + done.stderr
    return messages


def test_the_example_site_passes_mypy_strict_with_django_stubs(
    mypy_messages: list[tuple[str, int, str, str]],
) -> None:
    in_example = [m for m in mypy_messages if m[0].startswith("example_django")]
    assert in_example == []


def test_typed_views_and_getters_are_what_mypy_sees(
    mypy_messages: list[tuple[str, int, str, str]],
) -> None:
    # The first case (HttpRequest has no attribute "redis") fails only with django-stubs:
    # without them every Django name is Any.
    expected = []
    for number, line in enumerate((ROOT / CASES).read_text().splitlines(), start=1):
        match = EXPECTED.search(line)
        if match:
            # The message is about the next line.
            expected.append((str(CASES), number + 1, match["kind"], match["text"].strip()))
    assert len(expected) == 7
    got = [m for m in mypy_messages if m[0] == str(CASES)]
    assert got == expected


# -- the getters at run time ---------------------------------------------------------------------


@pytest.fixture
def kinds(redis_server: Any, redis_cluster: Any) -> Iterator[None]:
    saved = redis_conn.connections.source
    redis_conn.connections.configure(
        {
            "users": {"URL": redis_server.url},
            "cache": {"URL": redis_cluster.url, "CLUSTER": True},
            "dev": {"FAKE": True},
            "sessions": {"ALIAS": "cache"},
        }
    )
    try:
        yield
    finally:
        redis_conn.connections.close_all()
        saved.apply_to(redis_conn.connections)


def test_typed_getters_return_the_shared_client(kinds: None) -> None:
    users = redis_conn.get_standalone_redis("users")
    # A redis.Redis (our subclass: CONTRACT 13's reply rule) shared by every caller.
    assert isinstance(users, redis.Redis) and users is redis_conn.get_redis("users")
    assert users.ping() is True
    cache = redis_conn.get_cluster_redis("cache")
    assert isinstance(cache, RedisCluster) and cache is redis_conn.get_redis("cache")
    assert redis_conn.get_cluster_redis("sessions") is cache
    cache.set("k", "v")
    assert cache.get("k") == b"v"
    assert isinstance(redis_conn.get_standalone_redis("dev"), redis.Redis)


def test_the_wrong_kind_is_a_type_error_naming_the_connection(kinds: None) -> None:
    with pytest.raises(TypeError) as cluster:
        redis_conn.get_standalone_redis("cache")
    assert str(cluster.value) == (
        "Redis connection 'cache' is a cluster, so get_standalone_redis('cache') cannot return "
        "it: use get_cluster_redis('cache'), or get_redis('cache') for either kind."
    )
    with pytest.raises(TypeError) as standalone:
        redis_conn.get_cluster_redis("users")
    assert str(standalone.value) == (
        "Redis connection 'users' is not a cluster, so get_cluster_redis('users') cannot "
        "return it: use get_standalone_redis('users'), or get_redis('users') for either kind."
    )


def test_async_typed_getters(kinds: None) -> None:
    async def main() -> None:
        users = redis_conn.get_async_standalone_redis("users")
        assert isinstance(users, redis.asyncio.Redis)
        assert users is redis_conn.get_async_redis("users")
        assert await users.ping() is True
        cache = redis_conn.get_async_cluster_redis("cache")
        assert isinstance(cache, AsyncRedisCluster)
        await cache.set("k", "w")
        assert await cache.get("k") == b"w"
        with pytest.raises(TypeError) as wrong:
            redis_conn.get_async_cluster_redis("dev")
        assert str(wrong.value) == (
            "Redis connection 'dev' is not a cluster, so get_async_cluster_redis('dev') cannot "
            "return it: use get_async_standalone_redis('dev'), or get_async_redis('dev') for "
            "either kind."
        )
        await redis_conn.connections.aclose_async()

    asyncio.run(main())


def test_a_flask_app_context_is_honoured(redis_server: Any) -> None:
    # The typed getters resolve names like get_redis: in a Flask app, that app's connections.
    from flask import Flask

    from redis_conn.flask import RedisConn

    app = Flask(__name__)
    app.config["REDIS_CONNECTIONS"] = {"only_here": {"URL": redis_server.url}}
    RedisConn(app)
    with app.app_context():
        registry = app.extensions["redis_conn"].registry
        assert redis_conn.get_standalone_redis("only_here") is registry.get("only_here")
        registry.close_all()
