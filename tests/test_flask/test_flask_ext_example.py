"""The example Flask app's Flask-Caching page: on the app's "default" connection, one pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from example_flask.app import cache, create_app
from redis_conn.flask.caching import RedisConnCache
from redis_conn.flask.extension import app_registry


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_USERS_URL", raising=False)
    app = create_app()
    yield app
    app_registry(app).close_all()


def test_about_is_cached_on_the_default_connection(app: Flask) -> None:
    client = app.test_client()
    first = client.get("/about").json
    assert first is not None and first["page"] == "/about"
    assert client.get("/about").json == first  # the cached response
    with app.app_context():
        assert isinstance(app.extensions["cache"][cache], RedisConnCache)
        raw = app_registry(app).get("default")  # FAKE, decode_responses=True
        assert raw.keys("flask_cache_*") == ["flask_cache_view//about"]
    assert set(app_registry(app).created_clients()) == {"default"}


def test_every_app_has_its_own_cache(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    other = create_app()
    try:
        first: Any = app.test_client().get("/about").json
        second: Any = other.test_client().get("/about").json
        assert first["rendered_at"] != second["rendered_at"]  # separate FAKE servers
    finally:
        app_registry(other).close_all()
