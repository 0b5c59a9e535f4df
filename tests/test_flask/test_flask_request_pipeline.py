"""rc.request_pipeline: one batch per request, sent after the view returns, dropped if it raises."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from flask import Flask, abort
from flask.views import MethodView

from redis_conn import PipelineError
from redis_conn.flask import RedisConn
from redis_conn.flask.extension import app_registry
from redis_conn.pipeline import pipeline
from redis_conn.request_scope import current_pipeline

MakeApp = Callable[..., Flask]
StartResponse = Callable[..., Any]


def observe_start_response(app: Flask, observe: Callable[[], Any], seen: dict[str, Any]) -> None:
    """Record ``observe()`` at the moment the response starts (status and headers go out)."""
    inner = app.wsgi_app

    def outer(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["at_start_response"] = observe()
            return start_response(status, headers, exc_info)

        return inner(environ, start)

    app.wsgi_app = outer  # type: ignore[method-assign]


def test_batch_runs_after_the_view_returns_and_before_the_response_starts(
    rc: RedisConn,
    make_app: MakeApp,
    two_servers: dict[str, Any],
    raw_a: redis.Redis,
    raw_b: redis.Redis,
) -> None:
    app = make_app(two_servers)
    seen: dict[str, Any] = {}

    def state() -> tuple[Any, Any]:
        return raw_a.get("hits"), raw_b.lrange("log", 0, -1)

    @app.get("/")
    def index() -> str:
        hits = rc.request_pipeline.incr("hits")
        rc.request_pipeline["messages"].rpush("log", "seen")  # same batch, server B
        seen["queued"] = len(rc.request_pipeline)
        seen["in_view"] = state()
        seen["future_done"] = hits.done()
        return "ok"

    observe_start_response(app, state, seen)
    response = app.test_client().get("/")
    assert response.status_code == 200
    assert seen == {
        "queued": 2,
        "in_view": (None, []),
        "future_done": False,
        "at_start_response": ("1", ["seen"]),
    }


def test_execute_in_the_view_sends_what_is_queued_so_far(
    rc: RedisConn, make_app: MakeApp, two_servers: dict[str, Any], raw_a: redis.Redis
) -> None:
    app = make_app(two_servers)

    @app.get("/")
    def index() -> dict[str, Any]:
        first = rc.request_pipeline.incr("hits")
        rc.request_pipeline.execute()
        rc.request_pipeline.incr("hits")  # sent after the view returns
        return {"first": first.result, "on_server": raw_a.get("hits")}

    assert app.test_client().get("/").json == {"first": 1, "on_server": "1"}
    assert raw_a.get("hits") == "2"


def test_the_core_api_joins_the_request_batch(
    rc: RedisConn,
    make_app: MakeApp,
    two_servers: dict[str, Any],
    raw_a: redis.Redis,
    raw_b: redis.Redis,
) -> None:
    app = make_app(two_servers)
    seen: dict[str, Any] = {}

    def remember(text: str, pipe: Any = None) -> None:  # library code (CONTRACT 3)
        with pipeline(pipe, name="messages", autocommit=True) as p:
            p.rpush("log", text)

    @app.get("/")
    def index() -> str:
        assert current_pipeline() is rc.request_pipeline
        remember("via current_pipeline", current_pipeline())
        remember("via rc", rc.request_pipeline)
        rc.request_pipeline["sessions"].set("s", "1")  # an alias of default
        seen["queued"] = len(rc.request_pipeline)
        seen["in_view"] = raw_b.llen("log")
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert seen == {"queued": 3, "in_view": 0}
    assert raw_b.lrange("log", 0, -1) == ["via current_pipeline", "via rc"]
    assert raw_a.get("s") == "1"


class Teapot(Exception):
    pass


def raising_app(make_app: MakeApp, servers: dict[str, Any], how: str, **config: Any) -> Flask:
    app = make_app(servers, **config)
    rc: RedisConn = app.extensions["redis_conn"].extension

    @app.errorhandler(Teapot)
    def teapot(exc: Teapot) -> tuple[str, int]:
        return "teapot", 418

    @app.get("/")
    def index() -> str:
        rc.request_pipeline.incr("hits")
        rc.request_pipeline["messages"].rpush("log", "seen")
        if how == "abort":
            abort(404)
        if how == "handled":
            raise Teapot()
        raise RuntimeError("boom")

    return app


@pytest.mark.parametrize(("how", "status"), [("unhandled", 500), ("abort", 404), ("handled", 418)])
def test_a_view_that_raised_sends_nothing(
    make_app: MakeApp,
    two_servers: dict[str, Any],
    raw_a: redis.Redis,
    raw_b: redis.Redis,
    how: str,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = raising_app(make_app, two_servers, how)
    assert app.test_client().get("/").status_code == status
    assert (raw_a.exists("hits"), raw_b.exists("log")) == (0, 0)


def test_a_view_that_raised_sends_nothing_when_exceptions_propagate(
    make_app: MakeApp, two_servers: dict[str, Any], raw_a: redis.Redis, raw_b: redis.Redis
) -> None:
    app = raising_app(make_app, two_servers, "unhandled", testing=True)
    with pytest.raises(RuntimeError, match="boom"):
        app.test_client().get("/")
    assert (raw_a.exists("hits"), raw_b.exists("log")) == (0, 0)


def test_an_error_handler_may_queue_its_own_commands(
    rc: RedisConn,
    make_app: MakeApp,
    two_servers: dict[str, Any],
    raw_a: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(two_servers)

    @app.errorhandler(ValueError)
    def bad_value(exc: ValueError) -> tuple[str, int]:
        rc.request_pipeline.incr("errors:400")
        return "bad", 400

    @app.errorhandler(500)
    def server_error(exc: Exception) -> tuple[str, int]:
        rc.request_pipeline.incr("errors:500")
        return "sorry", 500

    @app.get("/<kind>")
    def index(kind: str) -> str:
        rc.request_pipeline.incr("hits")
        raise ValueError() if kind == "value" else RuntimeError()

    client = app.test_client()
    assert client.get("/value").status_code == 400
    assert client.get("/runtime").status_code == 500
    assert raw_a.mget("hits", "errors:400", "errors:500") == [None, "1", "1"]


def test_class_based_and_blueprint_views_are_covered(
    rc: RedisConn, make_app: MakeApp, two_servers: dict[str, Any], raw_a: redis.Redis
) -> None:
    from flask import Blueprint

    app = make_app(two_servers)

    class Counter(MethodView):
        def post(self) -> str:
            rc.request_pipeline.incr("posted")
            return "ok"

        def delete(self) -> str:
            rc.request_pipeline.incr("deleted")
            abort(403)

    bp = Blueprint("bp", __name__)
    bp.add_url_rule("/counter", view_func=Counter.as_view("counter"))
    app.register_blueprint(bp)
    client = app.test_client()
    assert client.post("/counter").status_code == 200
    assert client.delete("/counter").status_code == 403
    assert raw_a.mget("posted", "deleted") == ["1", None]
    view = app.view_functions["bp.counter"]
    assert view.__name__ == "counter"
    assert view.view_class is Counter  # type: ignore[union-attr]


def test_a_failed_flush_gives_a_500_and_is_logged(
    rc: RedisConn,
    make_app: MakeApp,
    two_servers: dict[str, Any],
    raw_a: redis.Redis,
    raw_b: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(two_servers)
    raw_a.set("a_string", "x")

    @app.get("/")
    def index() -> str:
        rc.request_pipeline.set("before", "1")
        rc.request_pipeline.lpush("a_string", "y")  # WRONGTYPE at flush time
        rc.request_pipeline["messages"].rpush("log", "seen")
        return "ok"

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/")
    assert response.status_code == 500
    # The other commands and backends still ran.
    assert (raw_a.get("before"), raw_b.lrange("log", 0, -1)) == ("1", ["seen"])
    [flush_log] = [r for r in caplog.records if r.name == "redis_conn.request"]
    assert flush_log.levelno == logging.ERROR
    assert flush_log.getMessage() == (
        "Redis request pipeline of GET / failed to flush (the error propagates); "
        "failed commands per connection: 'default': 1 (LPUSH a_string)."
    )
    [flask_log] = [r for r in caplog.records if r.name == app.logger.name]
    assert flask_log.getMessage() == "Exception on / [GET]"
    assert flask_log.exc_info is not None
    assert isinstance(flask_log.exc_info[1], PipelineError)


def test_a_failed_flush_propagates_in_testing_mode(
    rc: RedisConn, make_app: MakeApp, two_servers: dict[str, Any], raw_a: redis.Redis
) -> None:
    app = make_app(two_servers, testing=True)
    raw_a.set("a_string", "x")

    @app.get("/")
    def index() -> str:
        rc.request_pipeline.lpush("a_string", "y")
        return "ok"

    with pytest.raises(PipelineError) as info:
        app.test_client().get("/")
    assert info.value.failed_commands == ["'default': LPUSH a_string"]


def test_on_flush_error_log_keeps_the_response(
    rc: RedisConn,
    make_app: MakeApp,
    two_servers: dict[str, Any],
    raw_a: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(two_servers, redis_conn_on_flush_error="log")
    raw_a.set("a_string", "x")

    @app.get("/")
    def index() -> str:
        rc.request_pipeline.lpush("a_string", "y")
        rc.request_pipeline.lpush("a_string", "z")
        return "ok"

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/")
    assert (response.status_code, response.text) == (200, "ok")
    [record] = caplog.records
    assert (record.name, record.levelno) == ("redis_conn.request", logging.ERROR)
    assert record.getMessage() == (
        "Redis request pipeline of GET / failed to flush (the response is kept); "
        "failed commands per connection: 'default': 2 (LPUSH a_string x2)."
    )


def test_a_flush_to_a_server_that_is_down_gives_a_500(
    rc: RedisConn,
    make_app: MakeApp,
    killable_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app({"default": {"URL": killable_server.url, "RETRY": 0}})

    @app.get("/")
    def index() -> str:
        rc.request_pipeline.incr("hits")
        return "ok"

    client = app.test_client()
    assert client.get("/").status_code == 200
    killable_server.kill()
    with caplog.at_level(logging.ERROR):
        assert client.get("/").status_code == 500
    messages = [r.getMessage() for r in caplog.records if r.name == "redis_conn.request"]
    assert messages == [
        "Redis request pipeline of GET / failed to flush (the error propagates); "
        "failed commands per connection: 'default': 1 (INCRBY hits)."
    ]


def test_async_views_queue_and_flush_like_sync_ones(
    rc: RedisConn,
    make_app: MakeApp,
    two_servers: dict[str, Any],
    raw_a: redis.Redis,
    raw_b: redis.Redis,
) -> None:
    app = make_app(two_servers)
    seen: dict[str, Any] = {}

    @app.get("/")
    async def index() -> dict[str, Any]:
        first = rc.request_pipeline.incr("hits")
        await asyncio.sleep(0)
        await asyncio.to_thread(rc.request_pipeline.execute)
        rc.request_pipeline["messages"].rpush("log", "async")
        await asyncio.sleep(0)
        seen["in_view"] = raw_b.llen("log")
        return {"first": first.result}

    @app.get("/raise")
    async def raising() -> str:
        rc.request_pipeline.incr("never")
        await asyncio.sleep(0)
        abort(409)

    client = app.test_client()
    assert client.get("/").json == {"first": 1}
    assert seen == {"in_view": 0}
    assert raw_b.lrange("log", 0, -1) == ["async"]
    assert client.get("/raise").status_code == 409
    assert raw_a.exists("never") == 0


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_concurrent_requests_never_see_each_others_commands(
    rc: RedisConn,
    make_app: MakeApp,
    two_servers: dict[str, Any],
    raw_a: redis.Redis,
    raw_b: redis.Redis,
    kind: str,
) -> None:
    app = make_app(two_servers)
    requests = 16
    # Every request queues its commands, then waits until all the others have queued theirs.
    barrier = threading.Barrier(requests, timeout=20)

    def queue(n: int) -> dict[str, Any]:
        for i in range(n):
            rc.request_pipeline.rpush(f"req:{n}", i)
        rc.request_pipeline["messages"].rpush(f"req:{n}", f"from {n}")
        barrier.wait()
        return {"n": n, "queued": len(rc.request_pipeline)}

    if kind == "sync":

        @app.get("/<int:n>")
        def sync_index(n: int) -> dict[str, Any]:
            result = queue(n)
            if n % 4 == 0:
                abort(400)  # a few raise: only theirs are dropped
            return result

    else:

        @app.get("/<int:n>")
        async def async_index(n: int) -> dict[str, Any]:
            await asyncio.sleep(0)
            result = queue(n)
            await asyncio.sleep(0)
            if n % 4 == 0:
                abort(400)
            return result

    def call(n: int) -> tuple[int, Any]:
        response = app.test_client().get(f"/{n}")
        return response.status_code, response.json

    with ThreadPoolExecutor(requests) as pool:
        results = list(pool.map(call, range(1, requests + 1)))

    for n, (status, body) in enumerate(results, start=1):
        if n % 4 == 0:
            assert status == 400
            assert raw_a.exists(f"req:{n}") == raw_b.exists(f"req:{n}") == 0
        else:
            assert (status, body) == (200, {"n": n, "queued": n + 1})
            assert raw_a.lrange(f"req:{n}", 0, -1) == [str(i) for i in range(n)]
            assert raw_b.lrange(f"req:{n}", 0, -1) == [f"from {n}"]


def test_each_request_gets_a_fresh_pipeline_even_in_one_app_context(
    rc: RedisConn, make_app: MakeApp, two_servers: dict[str, Any], raw_a: redis.Redis
) -> None:
    app = make_app(two_servers)

    @app.get("/")
    def index() -> dict[str, int]:
        before = len(rc.request_pipeline)
        rc.request_pipeline.incr("hits")
        return {"before": before}

    client = app.test_client()
    with app.app_context():  # both requests share this app context, and so its g
        assert client.get("/").json == client.get("/").json == {"before": 0}
    assert raw_a.get("hits") == "2"


def test_a_request_context_pushed_by_hand_is_flushed_when_it_ends(
    rc: RedisConn, make_app: MakeApp, two_servers: dict[str, Any], raw_a: redis.Redis
) -> None:
    app = make_app(two_servers)
    with app.test_request_context("/"):
        rc.request_pipeline.incr("hits")
        assert raw_a.exists("hits") == 0
    assert raw_a.get("hits") == "1"
    with pytest.raises(KeyError), app.test_request_context("/"):
        rc.request_pipeline.incr("hits")
        raise KeyError("boom")
    assert raw_a.get("hits") == "1"


def test_a_request_that_queues_nothing_takes_no_connection(
    rc: RedisConn, make_app: MakeApp, two_servers: dict[str, Any]
) -> None:
    app = make_app(two_servers)

    @app.get("/")
    def index() -> str:
        return f"queued {len(rc.request_pipeline)}"

    assert app.test_client().get("/").text == "queued 0"
    assert app_registry(app).created_clients() == {}


@pytest.mark.parametrize("where", ["before", "after"])
def test_an_unhandled_exception_outside_the_view_sends_nothing(
    rc: RedisConn,
    make_app: MakeApp,
    two_servers: dict[str, Any],
    raw_a: redis.Redis,
    where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flask import Response, request

    app = make_app(two_servers)

    @app.before_request
    def before() -> None:
        rc.request_pipeline.incr("before")
        if request.path == "/before":
            raise RuntimeError("in before_request")

    @app.after_request  # registered after init_app, so it runs before the flush
    def after(response: Response) -> Response:
        if request.path == "/after":
            raise RuntimeError("in after_request")
        return response

    @app.get("/<path>")
    def index(path: str) -> str:
        rc.request_pipeline.incr("view")
        return "ok"

    assert app.test_client().get(f"/{where}").status_code == 500
    assert raw_a.exists("before", "view") == 0


def test_async_views_asyncio_clients_are_closed_when_the_view_ends(
    rc: RedisConn, make_app: MakeApp, two_servers: dict[str, Any], raw_a: redis.Redis
) -> None:
    """Flask runs each async view on an event loop of its own, which ends with the view: the
    extension closes the clients the view made on it, so no socket outlives the request."""
    import redis_conn

    app = make_app(two_servers)

    @app.get("/")
    async def index() -> str:
        r = redis_conn.get_async_redis("sessions")
        assert r is rc.registry.get_async("default")
        await r.incr("async_hits")
        await r.client_setname("async-view")
        return "ok"

    @app.get("/raises")
    async def raises() -> str:
        await redis_conn.get_async_redis("sessions").client_setname("async-view")
        raise ValueError("boom")

    client = app.test_client()
    for _ in range(20):
        assert client.get("/").status_code == 200
        assert client.get("/raises").status_code == 500
    assert raw_a.get("async_hits") == "20"
    assert app_registry(app)._async_clients == {}
    named = [c for c in raw_a.client_list() if c["name"] == "async-view"]
    assert named == []
