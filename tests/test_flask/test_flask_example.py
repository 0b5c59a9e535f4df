"""example_flask: its pages on FAKE servers (the default) and on real ones from the environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from example_flask.app import create_app
from redis_conn.flask.extension import app_registry


@pytest.fixture
def apps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Flask]]:
    """Apps made by the example's factory; their pools are closed after the test."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_USERS_URL", raising=False)
    made: list[Flask] = []
    yield made
    for app in made:
        app_registry(app).close_all()


def make(apps: list[Flask]) -> Flask:
    app = create_app()
    apps.append(app)
    return app


def test_runs_on_fake_servers_by_default(apps: list[Flask]) -> None:
    app = make(apps)
    registry = app_registry(app)
    assert registry.names() == ["default", "users", "hits"]
    assert [registry.spec(name).kind for name in registry.names()] == ["fake"] * 3
    assert registry.spec("hits").alias_of == "default"

    client = app.test_client()
    assert client.get("/").json == {"page": "/", "hits": 1}
    assert client.get("/").json == {"page": "/", "hits": 2}
    assert client.post("/users/7/feed", json={"text": "hello"}).status_code == 202
    assert client.post("/users/7/feed", json={"text": "again"}).status_code == 202
    assert client.post("/users/7/feed", json={"text": " "}).status_code == 400
    assert client.get("/users/7/feed").json == {"user": 7, "messages": ["again", "hello"]}
    assert client.get("/users/8/feed").json == {"user": 8, "messages": []}
    assert client.get("/stats").json == {"posts": 2, "stats_views": 1}
    health = client.get("/health")
    assert (health.status_code, health.json and health.json["status"]) == (200, "ok")


def test_every_app_from_the_factory_has_its_own_fake_data(apps: list[Flask]) -> None:
    first, second = make(apps), make(apps)
    first.test_client().post("/users/1/feed", json={"text": "only in first"})
    assert second.test_client().get("/users/1/feed").json == {"user": 1, "messages": []}
    assert first.test_client().get("/users/1/feed").json == {
        "user": 1,
        "messages": ["only in first"],
    }


def test_runs_on_real_servers_given_by_the_environment(
    apps: list[Flask],
    monkeypatch: pytest.MonkeyPatch,
    redis_server: Any,
    redis_server_b: Any,
    raw_a: redis.Redis,
    raw_b: redis.Redis,
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("REDIS_USERS_URL", redis_server_b.url)
    app = make(apps)
    kinds = [app_registry(app).spec(name).kind for name in ("default", "users", "hits")]
    assert kinds == ["standalone"] * 3

    client = app.test_client()
    assert client.get("/").json == {"page": "/", "hits": 1}
    assert client.post("/users/3/feed", json={"text": "hi"}).status_code == 202
    assert client.get("/users/3/feed").json == {"user": 3, "messages": ["hi"]}
    # Feeds on server B; counters (the "hits" alias and "default") on server A.
    assert raw_b.lrange("feed:{3}", 0, -1) == ["hi"]
    assert raw_a.mget("hits:/", "stats:posts", "hits:feed") == ["1", "1", "1"]
    assert raw_b.exists("hits:/", "stats:posts") == 0
    assert client.get("/stats").json == {"posts": 1, "stats_views": 1}


def test_health_page_and_cli_report_a_server_that_is_down(
    apps: list[Flask], monkeypatch: pytest.MonkeyPatch, killable_server: Any
) -> None:
    monkeypatch.setenv("REDIS_USERS_URL", killable_server.url)
    app = make(apps)
    killable_server.kill()
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.json is not None
    assert [c["status"] for c in response.json["connections"]] == ["ok", "down", "ok"]

    result = app.test_cli_runner().invoke(args=["redis", "pools", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["status"] == "degraded"


def test_cli_on_the_example(apps: list[Flask]) -> None:
    result = make(apps).test_cli_runner().invoke(args=["redis", "pools"])
    assert result.exit_code == 0, result.output
    names = [line.split("  ")[0] for line in result.output.splitlines()[1:4]]
    assert names == ["default", "users", "hits -> default"]
