"""Fixtures for the Flask tests: one RedisConn per test, apps made on demand, raw clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import redis
from flask import Flask

from redis_conn.flask import RedisConn
from redis_conn.flask.extension import app_registry

MakeApp = Callable[..., Flask]


@pytest.fixture
def rc() -> RedisConn:
    return RedisConn()


@pytest.fixture
def make_app(rc: RedisConn) -> Iterator[MakeApp]:
    """``make_app(connections, **config)``: a Flask app with ``rc`` initialised on it.

    ``connections`` goes to ``REDIS_CONNECTIONS``; left unset when None, and then the app is
    in testing mode (the embedded fake default, which warns outside debug and testing mode,
    as in any test suite). ``config`` keys are upper-cased. Every app's pools are closed after
    the test.
    """
    apps: list[Flask] = []

    def make(connections: Mapping[str, Any] | None = None, **config: Any) -> Flask:
        app = Flask(__name__)
        if connections is not None:
            app.config["REDIS_CONNECTIONS"] = connections
        else:
            app.testing = True
        app.config.update({key.upper(): value for key, value in config.items()})
        rc.init_app(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app_registry(app).close_all()


@pytest.fixture
def raw_a(redis_server: Any) -> Iterator[redis.Redis]:
    """A plain client of server A, for assertions (decoded strings)."""
    client = redis_server.client(decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def raw_b(redis_server_b: Any) -> Iterator[redis.Redis]:
    """A plain client of server B, for assertions (decoded strings)."""
    client = redis_server_b.client(decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def two_servers(redis_server: Any, redis_server_b: Any) -> dict[str, Any]:
    """default on server A, messages on server B, sessions an alias of default."""
    return {
        "default": {"URL": redis_server.url, "OPTIONS": {"decode_responses": True}},
        "messages": {"URL": redis_server_b.url, "OPTIONS": {"decode_responses": True}},
        "sessions": {"ALIAS": "default"},
    }
