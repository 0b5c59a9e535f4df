"""The framework-free request pipeline: lazy root, flush/discard, current_pipeline, contexts."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import redis_conn.registry
import redis_conn.request_scope as request_scope
from redis_conn.exceptions import PipelineError, ResultNotReady
from redis_conn.pipeline import Pipeline, pipeline
from redis_conn.registry import ConnectionRegistry, add_registry_resolver
from redis_conn.request_scope import (
    PipelineProxy,
    RequestPipeline,
    activate,
    add_scope_resolver,
    current_pipeline,
    current_scope,
    deactivate,
)

SECRET_VALUE = "v4lue-that-must-not-be-logged"


@pytest.fixture
def registry(redis_server: Any, redis_server_b: Any) -> Iterator[Any]:
    r = ConnectionRegistry({"default": {"URL": redis_server.url}, "b": {"URL": redis_server_b.url}})
    yield r
    r.close_all()


@pytest.fixture
def raw(redis_server: Any) -> Iterator[Any]:
    client = redis_server.client(decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def dead_registry(killable_server: Any) -> Iterator[ConnectionRegistry]:
    r = ConnectionRegistry(
        {"default": {"URL": killable_server.url, "RETRY": 0}, "users": {"ALIAS": "default"}}
    )
    killable_server.kill()
    yield r
    r.close_all()


def test_an_unused_request_pipeline_creates_nothing_and_sends_nothing(
    registry: ConnectionRegistry,
) -> None:
    scope = RequestPipeline(registry)
    proxy = PipelineProxy(scope)
    assert len(proxy) == 0 and bool(proxy)
    scope.flush()
    assert not scope.started and scope.finished
    assert registry.created_clients() == {}  # no client, no pool, no socket


def test_the_root_is_created_on_first_use_and_flushed_once(
    registry: ConnectionRegistry, raw: Any
) -> None:
    scope = RequestPipeline(registry)
    proxy = PipelineProxy(scope)
    first = proxy.incr("hits")
    other = proxy["b"].set("k", "v")
    assert scope.started and len(proxy) == 2
    assert isinstance(proxy, Pipeline)
    with pytest.raises(ResultNotReady):
        _ = first.result
    scope.flush()
    assert (first.result, other.result) == (1, True)
    scope.flush()  # a second flush sends nothing again
    assert raw.get("hits") == "1"


def test_after_the_flush_the_pipeline_refuses_new_commands(registry: ConnectionRegistry) -> None:
    scope = RequestPipeline(registry, description="GET /stream/")
    proxy = PipelineProxy(scope)
    proxy.incr("hits")
    scope.flush()
    with pytest.raises(RuntimeError) as excinfo:
        proxy.incr("hits")
    assert str(excinfo.value) == (
        "The request pipeline of GET /stream/ was already flushed when the response left; "
        "a command queued now would never be sent. After the response (e.g. in a streaming "
        "response's generator) use redis_conn.get_redis(name) or a pipeline() of your own."
    )


def test_introspection_neither_creates_the_root_nor_fails_after_the_flush(
    registry: ConnectionRegistry,
) -> None:
    scope = RequestPipeline(registry)
    proxy = PipelineProxy(scope)
    for _ in range(2):  # before and after the flush
        assert isinstance(proxy, Pipeline) and not isinstance(proxy, dict)
        assert not hasattr(proxy, "__html__")
        assert repr(proxy).startswith("<PipelineProxy <RequestPipeline")
        assert not scope.started
        scope.flush()


def test_discard_sends_nothing(registry: ConnectionRegistry, raw: Any) -> None:
    scope = RequestPipeline(registry)
    future = scope.pipeline.incr("hits")
    scope.discard()
    scope.flush()  # the request is over: nothing left to send
    assert raw.get("hits") is None
    assert future.done()
    with pytest.raises(ResultNotReady, match="discarded"):
        _ = future.result
    assert repr(scope) == "<RequestPipeline discarded>"


def test_a_nested_pipeline_joins_the_request_batch(registry: ConnectionRegistry, raw: Any) -> None:
    scope = RequestPipeline(registry)
    proxy = PipelineProxy(scope)
    with pipeline(proxy, name="b", autocommit=True) as p:
        nested = p.incr("nested")
    assert len(proxy) == 1 and not nested.done()
    scope.flush()
    assert nested.result == 1


def test_a_failed_flush_logs_the_commands_per_connection_and_raises(
    dead_registry: ConnectionRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    scope = RequestPipeline(dead_registry, description="POST /orders/")
    scope.pipeline.set("order:1", SECRET_VALUE)
    scope.pipeline.incr("hits")
    scope.pipeline["users"].incr("hits")
    with (
        caplog.at_level(logging.ERROR, logger="redis_conn.request"),
        pytest.raises(PipelineError) as excinfo,
    ):
        scope.flush()
    assert list(excinfo.value.errors) == ["default"]
    [record] = caplog.records
    assert record.name == "redis_conn.request" and record.levelno == logging.ERROR
    assert record.getMessage() == (
        "Redis request pipeline of POST /orders/ failed to flush (the error propagates); "
        "failed commands per connection: 'default': 2 (SET order:1, INCRBY hits); "
        "'users': 1 (INCRBY hits)."
    )
    assert record.redis_failed_commands == {  # type: ignore[attr-defined]
        "'default'": {"SET order:1": 1, "INCRBY hits": 1},
        "'users'": {"INCRBY hits": 1},
    }
    assert record.exc_info is not None and record.exc_info[1] is excinfo.value
    assert SECRET_VALUE not in caplog.text


def test_on_error_log_keeps_going_but_is_never_silent(
    dead_registry: ConnectionRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    scope = RequestPipeline(dead_registry)
    for _ in range(3):
        scope.pipeline.incr("hits")
    with caplog.at_level(logging.ERROR, logger="redis_conn.request"):
        scope.flush(on_error="log")
    [record] = caplog.records
    assert record.getMessage() == (
        "Redis request pipeline failed to flush (the response is kept); "
        "failed commands per connection: 'default': 3 (INCRBY hits x3)."
    )


def test_on_error_must_be_raise_or_log(registry: ConnectionRegistry) -> None:
    scope = RequestPipeline(registry)
    with pytest.raises(ValueError) as excinfo:
        scope.flush(on_error="ignore")  # type: ignore[arg-type]
    assert str(excinfo.value) == "on_error must be 'raise' or 'log', not 'ignore'."
    assert not scope.finished


def test_aflush_does_not_block_the_event_loop(registry: ConnectionRegistry) -> None:
    async def main() -> int:
        scope = RequestPipeline(registry)
        scope.pipeline.blpop(["nothing-here"], timeout=0.3)  # the server answers after 0.3 s
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await scope.aflush()
        task.cancel()
        return ticks

    assert asyncio.run(main()) >= 10


def test_aflush_without_commands_does_not_hop_threads(registry: ConnectionRegistry) -> None:
    async def main() -> None:
        scope = RequestPipeline(registry)
        before = threading.active_count()
        await scope.aflush()
        assert scope.finished and threading.active_count() == before

    asyncio.run(main())


def test_current_pipeline_is_none_outside_a_request() -> None:
    assert current_pipeline() is None
    assert current_scope() is None


def test_current_pipeline_is_the_active_requests_root(registry: ConnectionRegistry) -> None:
    scope = RequestPipeline(registry)
    token = activate(scope)
    try:
        root = current_pipeline()
        assert root is scope.pipeline and current_scope() is scope
        scope.flush()
        assert current_pipeline() is None  # finished: nothing to queue into
    finally:
        deactivate(token)
    assert current_scope() is None


def test_concurrent_threads_never_see_each_others_commands(
    registry: ConnectionRegistry, raw: Any
) -> None:
    seen: dict[int, tuple[int, bool]] = {}
    start = threading.Barrier(16)

    def request(n: int) -> None:
        scope = RequestPipeline(registry)
        token = activate(scope)
        try:
            start.wait()
            for i in range(n):
                current = current_pipeline()
                assert current is not None
                current.rpush(f"list:{n}", i)
                time.sleep(0)
            root = current_pipeline()
            seen[n] = (len(root) if root is not None else -1, root is scope.pipeline)
            scope.flush()
        finally:
            deactivate(token)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(1, 17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {n: (n, True) for n in range(1, 17)}
    assert all(raw.lrange(f"list:{n}", 0, -1) == [str(i) for i in range(n)] for n in range(1, 17))


def test_concurrent_tasks_never_see_each_others_commands(registry: ConnectionRegistry) -> None:
    async def request(n: int) -> int:
        scope = RequestPipeline(registry)
        token = activate(scope)
        try:
            for i in range(n):
                current = current_pipeline()
                assert current is not None
                current.rpush(f"list:{n}", i)
                await asyncio.sleep(0)
            root = current_pipeline()
            assert root is scope.pipeline
            count = len(root)
            await scope.aflush()
            return count
        finally:
            deactivate(token)

    async def main() -> list[int]:
        return await asyncio.gather(*(request(n) for n in range(1, 21)))

    assert asyncio.run(main()) == list(range(1, 21))


def test_a_scope_resolver_finds_a_framework_s_pipeline(registry: ConnectionRegistry) -> None:
    scope = RequestPipeline(registry)
    enabled = False

    def resolver() -> RequestPipeline | None:
        return scope if enabled else None

    add_scope_resolver(resolver)
    add_scope_resolver(resolver)  # once only
    try:
        assert request_scope._resolvers.count(resolver) == 1
        assert current_pipeline() is None
        enabled = True
        assert current_pipeline() is scope.pipeline
        other = RequestPipeline(registry)
        token = activate(other)  # an activated scope wins over resolvers
        try:
            assert current_scope() is other
        finally:
            deactivate(token)
    finally:
        request_scope._resolvers.remove(resolver)


def test_the_root_uses_the_given_registry_else_the_current_one(
    registry: ConnectionRegistry, raw: Any
) -> None:
    elsewhere = ConnectionRegistry({"default": {"FAKE": True}})
    add_registry_resolver(_elsewhere := lambda: elsewhere)
    try:
        given = RequestPipeline(registry)
        given.pipeline.set("where", "given")
        current = RequestPipeline()
        current.pipeline.set("where", "current")
        given.flush()
        current.flush()
    finally:
        redis_conn.registry._resolvers.remove(_elsewhere)
        elsewhere.close_all()
    assert raw.get("where") == "given"
    assert elsewhere.get().get("where") == b"current"


def test_repr_shows_the_state(registry: ConnectionRegistry) -> None:
    scope = RequestPipeline(registry, description="GET /")
    proxy = PipelineProxy(scope)
    assert repr(proxy) == "<PipelineProxy <RequestPipeline of GET / unused>>"
    proxy.incr("x")
    assert repr(proxy) == "<PipelineProxy <Pipeline root 'default' queued=1>>"
    scope.flush()
    assert repr(proxy) == "<PipelineProxy <RequestPipeline of GET / flushed>>"
