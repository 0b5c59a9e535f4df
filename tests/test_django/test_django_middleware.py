"""RequestPipelineMiddleware under WSGI (test client, many threads) and ASGI (AsyncClient)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.test import AsyncClient, Client

from redis_conn.exceptions import PipelineError
from redis_conn.registry import connections
from redis_conn.request_scope import current_pipeline

TAGGED_COMMANDS = 20  # as in views.py

pytestmark = pytest.mark.usefixtures("real_servers")


@pytest.fixture
def dead_default(settings: Any, killable_server: Any, redis_server_b: Any) -> Any:
    """default on a server that is down; messages still up."""
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": killable_server.url, "RETRY": 0},
        "messages": {"URL": redis_server_b.url},
    }
    killable_server.kill()
    return settings


# -- WSGI ------------------------------------------------------------------------------------


def test_the_batch_runs_after_the_view_returns(client: Client, server_a: Any) -> None:
    response = client.get("/hits/")
    assert response.status_code == 200
    assert server_a.get("hits") == "1"


def test_another_connection_joins_the_same_batch(
    client: Client, server_a: Any, server_b: Any
) -> None:
    client.get("/two-backends/")
    assert server_a.get("hits") == "1"
    assert server_b.lrange("log", 0, -1) == ["seen"]


def test_execute_in_the_view_runs_what_is_queued_so_far(client: Client, server_a: Any) -> None:
    response = client.get("/execute-midway/")
    assert response.json() == {"first": 1, "queued_after": 1}
    assert server_a.get("hits") == "2"  # the second INCR went with the final flush


def test_an_unused_pipeline_costs_no_connection_and_no_command(
    client: Client, server_a: Any
) -> None:
    before = server_a.info("stats")["total_commands_processed"]
    response = client.get("/unused/")
    after = server_a.info("stats")["total_commands_processed"]
    assert after == before + 1  # only this test's own INFO
    assert connections.created_clients() == {}
    scope = response.wsgi_request._redis_conn_scope  # type: ignore[attr-defined]
    assert not scope.started and scope.finished


def test_a_view_that_raised_sends_nothing(server_a: Any) -> None:
    response = Client(raise_request_exception=False).get("/raises/")
    assert response.status_code == 500
    with pytest.raises(ValueError, match="the view failed"):
        Client().get("/raises/")
    assert server_a.get("hits") is None


def test_a_view_that_raised_http404_sends_nothing(client: Client, server_a: Any) -> None:
    assert client.get("/not-found/").status_code == 404
    assert server_a.get("hits") is None


def test_an_error_below_the_middleware_after_the_view_sends_nothing(
    settings: Any, server_a: Any
) -> None:
    settings.MIDDLEWARE = [
        "redis_conn.django.middleware.RequestPipelineMiddleware",
        "tests.test_django.views.FailsAfterTheView",
    ]
    response = Client(raise_request_exception=False).get("/hits/")
    assert response.status_code == 500
    assert server_a.get("hits") is None


def test_listed_last_it_discards_before_another_middleware_answers_the_exception(
    settings: Any, server_a: Any
) -> None:
    settings.MIDDLEWARE = [
        "tests.test_django.views.AnswersExceptions",
        "redis_conn.django.middleware.RequestPipelineMiddleware",
    ]
    response = Client().get("/raises/")
    assert (response.status_code, response.content) == (418, b"handled")
    assert server_a.get("hits") is None


def test_library_code_joins_the_request_batch(client: Client, server_b: Any) -> None:
    response = client.get("/library/")
    assert response.content == b"2 queued"
    assert server_b.lrange("visits", 0, -1) == ["1", "2"]


def test_a_streaming_response_is_flushed_before_its_content_is_generated(
    client: Client, server_a: Any
) -> None:
    response = client.get("/streaming/")
    assert server_a.get("hits") == "1"
    content = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert content.startswith(
        "start;refused: The request pipeline of GET /streaming/ was "
        "already flushed when the response left;"
    )
    assert server_a.get("hits") == "1"


def test_current_pipeline_is_none_after_the_request(client: Client) -> None:
    client.get("/hits/")
    assert current_pipeline() is None


def test_a_failed_flush_raises_by_default(
    dead_default: Any, server_b: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="redis_conn.request"):
        with pytest.raises(PipelineError) as excinfo:
            Client().get("/two-backends/")
        response = Client(raise_request_exception=False).get("/two-backends/")
    assert list(excinfo.value.errors) == ["default"]
    assert response.status_code == 500
    assert server_b.lrange("log", 0, -1) == ["seen", "seen"]  # the other backend still ran
    records = [r for r in caplog.records if r.name == "redis_conn.request"]
    assert [r.getMessage() for r in records] == 2 * [
        "Redis request pipeline of GET /two-backends/ failed to flush (the error propagates); "
        "failed commands per connection: 'default': 1 (INCRBY hits)."
    ]


def test_a_failed_flush_with_on_error_log_keeps_the_response(
    dead_default: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dead_default.REDIS_CONN_ON_FLUSH_ERROR = "log"
    with caplog.at_level(logging.ERROR, logger="redis_conn.request"):
        response = Client().get("/hits/")
    assert response.status_code == 200
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "Redis request pipeline of GET /hits/ failed to flush (the response is kept); "
        "failed commands per connection: 'default': 1 (INCRBY hits)."
    )


def test_many_threads_never_see_each_others_commands(server_a: Any) -> None:
    tags = [f"t{n}" for n in range(64)]

    def get(tag: str) -> Any:
        return Client().get(f"/tagged/{tag}/").json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        bodies = list(pool.map(get, tags))
    expected = {"seen": TAGGED_COMMANDS, "same": True, "results": list(range(1, 21))}
    assert bodies == [expected] * len(tags)
    for tag in tags:
        own = [f"{tag}:{i}" for i in range(TAGGED_COMMANDS)] + [f"{tag}:after"]
        assert server_a.lrange(f"req:{tag}", 0, -1) == own


# -- ASGI ------------------------------------------------------------------------------------


def test_async_view_batch_runs_before_the_response(server_a: Any, server_b: Any) -> None:
    response = asyncio.run(AsyncClient().get("/async/hits/"))
    assert response.status_code == 200
    assert server_a.get("hits") == "1"
    assert server_b.lrange("log", 0, -1) == ["seen"]


def test_sync_view_under_asgi(server_a: Any) -> None:
    response = asyncio.run(AsyncClient().get("/execute-midway/"))
    assert response.json() == {"first": 1, "queued_after": 1}
    assert server_a.get("hits") == "2"


def test_async_view_that_raised_sends_nothing(server_a: Any) -> None:
    with pytest.raises(ValueError, match="the async view failed"):
        asyncio.run(AsyncClient().get("/async/raises/"))
    response = asyncio.run(AsyncClient(raise_request_exception=False).get("/async/raises/"))
    assert response.status_code == 500
    assert server_a.get("hits") is None


def test_async_view_executes_without_blocking(server_a: Any) -> None:
    response = asyncio.run(AsyncClient().get("/async/execute-midway/"))
    assert response.json() == {"first": 1}


def test_async_flush_does_not_block_the_event_loop() -> None:
    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        response = await AsyncClient().get("/async/slow/")  # its flush takes 0.3 s
        task.cancel()
        assert response.status_code == 200
        return ticks

    assert asyncio.run(main()) >= 10


def test_async_failed_flush_raises(dead_default: Any) -> None:
    with pytest.raises(PipelineError):
        asyncio.run(AsyncClient().get("/async/hits/"))


def test_concurrent_asgi_requests_never_see_each_others_commands(server_a: Any) -> None:
    async def main() -> list[Any]:
        client = AsyncClient()
        async_tags = [client.get(f"/async/tagged/a{n}/") for n in range(30)]
        sync_tags = [client.get(f"/tagged/s{n}/") for n in range(10)]  # sync views, in threads
        return await asyncio.gather(*async_tags, *sync_tags)

    responses = asyncio.run(main())
    bodies = [r.json() for r in responses]
    assert bodies[:30] == [{"seen": TAGGED_COMMANDS, "same": True}] * 30
    assert all(b["seen"] == TAGGED_COMMANDS and b["same"] for b in bodies[30:])
    for n in range(30):
        assert server_a.lrange(f"req:a{n}", 0, -1) == [f"a{n}:{i}" for i in range(20)]
