"""redis_conn.flask.health: Django's policy (statuses for anyone), details only when configured."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, request

from redis_conn import ConfigurationError
from redis_conn.flask import RedisConn, health

MakeApp = Callable[..., Flask]

PASSWORD = "app-s3cret-pw"


def routed(app: Flask) -> Flask:
    app.add_url_rule("/health", view_func=health)
    app.add_url_rule("/readyz", view_func=health, endpoint="readyz", defaults={"names": ["a"]})
    return app


@pytest.fixture
def one_down(
    make_app: MakeApp, redis_server: Any, redis_server_b: Any, killable_server: Any
) -> Any:
    connections = {
        "a": {"URL": redis_server.url},
        "users": {"URL": redis_server_b.acl_url},
        "down": {"URL": killable_server.url},
    }
    killable_server.kill()
    return lambda **config: routed(make_app(connections, **config))


def test_anyone_sees_names_and_statuses_only(one_down: Any) -> None:
    response = one_down().test_client().get("/health")
    assert response.status_code == 503
    assert response.json == {
        "status": "degraded",
        "connections": [
            {"name": "a", "status": "ok"},
            {"name": "users", "status": "ok"},
            {"name": "down", "status": "down"},
        ],
    }
    assert response.headers["Cache-Control"] == (
        "max-age=0, no-cache, no-store, must-revalidate, private"
    )
    assert b"127.0.0.1" not in response.data


def test_details_when_the_setting_says_true(one_down: Any, redis_server_b: Any) -> None:
    body = one_down(redis_conn_health_details=True).test_client().get("/health").json
    users = body["connections"][1]
    assert users["target"] == redis_server_b.acl_url.replace(PASSWORD, "***")
    assert users["server"]["role"] == "master"
    assert body["connections"][2]["error"].startswith(
        "ConnectionError: Redis connection 'down': Error 111 connecting to 127.0.0.1:"
    )
    assert PASSWORD not in str(body)


def test_details_decided_per_request_by_a_function(one_down: Any) -> None:
    app = one_down(redis_conn_health_details=lambda: request.headers.get("X-Ops") == "yes")
    client = app.test_client()
    assert "target" not in client.get("/health").json["connections"][0]
    assert "target" in client.get("/health", headers={"X-Ops": "yes"}).json["connections"][0]


def test_names_from_the_url_rule_and_methods(one_down: Any) -> None:
    client = one_down().test_client()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "connections": [{"name": "a", "status": "ok"}]}
    assert client.head("/readyz").status_code == 200
    assert client.post("/readyz").status_code == 405
    assert client.put("/health").status_code == 405


def test_the_setting_is_checked_by_init_app() -> None:
    app = Flask(__name__)
    app.config["REDIS_CONN_HEALTH_DETAILS"] = "staff"
    with pytest.raises(ConfigurationError) as excinfo:
        RedisConn(app)
    assert str(excinfo.value) == (
        "REDIS_CONN_HEALTH_DETAILS must be True, False or a function of no arguments that "
        "returns whether to show them, not 'staff'."
    )


def test_flask_redis_pools_does_not_call_nothing_ok(make_app: MakeApp) -> None:
    app = make_app({})
    result = app.test_cli_runner().invoke(args=["redis", "pools"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: REDIS_CONNECTIONS is empty: there is no Redis connection to report.\n"
    )
