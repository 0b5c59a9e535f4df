"""Flask: names on the server, ``flask redis pools --workers``, and Server-Timing (in a real
browser too)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from selenium.webdriver.common.by import By

from redis_conn import ConfigurationError
from redis_conn.flask import RedisConn
from redis_conn.flask.extension import app_registry

try:
    from browser import chromium, free_port, server_timing, web_server
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.browser import chromium, free_port, server_timing, web_server

MakeApp = Callable[..., Flask]
TIMING = re.compile(r'redis;dur=\d+\.\d;desc="(?P<desc>[^"]*)"')


@pytest.fixture
def shop_app(rc: RedisConn, two_servers: dict[str, Any]) -> Any:
    """An app whose import name is ``shop.web``: its connections are named ``shop:...``."""
    made: list[Flask] = []

    def make(**config: Any) -> Flask:
        app = Flask("shop.web", root_path=str(Path(__file__).parent))
        app.config["REDIS_CONNECTIONS"] = two_servers
        app.config.update(config)
        rc.init_app(app)
        made.append(app)

        @app.get("/two")
        def two() -> str:
            rc.request_pipeline.incr("hits")
            rc.request_pipeline["messages"].lpush("log", "seen")
            return "ok"

        @app.get("/none")
        def none() -> str:
            return "ok"

        return app

    yield make
    for app in made:
        app_registry(app).close_all()


def test_connections_are_named_after_the_app(shop_app: Any) -> None:
    app = shop_app()
    with app.app_context():
        assert app_registry(app).get("default").client_getname() == "shop:default"
    app = shop_app(REDIS_CONN_CLIENT_NAME_PREFIX="billing")
    with app.app_context():
        assert app_registry(app).get("messages").client_getname() == "billing:messages"
    app = shop_app(REDIS_CONN_CLIENT_NAME_PREFIX=None)
    with app.app_context():
        assert app_registry(app).get("default").client_getname() == "default"


def test_server_timing_is_opt_in_and_validated(shop_app: Any, rc: RedisConn) -> None:
    assert "Server-Timing" not in shop_app().test_client().get("/two").headers
    client = shop_app(REDIS_CONN_SERVER_TIMING=True).test_client()
    match = TIMING.fullmatch(client.get("/two").headers["Server-Timing"])
    assert match is not None and match["desc"] == "2 commands, 2 round trips"
    assert "Server-Timing" not in client.get("/none").headers
    app = Flask("bad")
    app.config["REDIS_CONN_SERVER_TIMING"] = "on"
    with pytest.raises(ConfigurationError) as excinfo:
        RedisConn().init_app(app)
    assert str(excinfo.value) == "REDIS_CONN_SERVER_TIMING must be True or False, not 'on'."


def test_flask_redis_pools_workers(shop_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    app = shop_app()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["redis", "pools", "--json", "--connection", "default"])
    (entry,) = json.loads(result.output)["connections"]
    assert entry["budget"] is None and entry["maxclients"] == 10000
    assert entry["server_connections"] == 0  # the CLI's probe (<name>:probe) is not counted
    result = runner.invoke(
        args=["redis", "pools", "--json", "--connection", "default", "--workers", "8"]
    )
    assert result.exit_code == 0, result.output
    budget = json.loads(result.output)["connections"][0]["budget"]
    assert (budget["workers"], budget["total"], budget["percent"]) == (8, 400, 4.0)
    app = shop_app(REDIS_CONN_WORKERS=2)
    result = app.test_cli_runner().invoke(args=["redis", "pools", "--json"])
    assert [c["budget"]["workers"] for c in json.loads(result.output)["connections"]] == [2, 2, 2]
    result = runner.invoke(args=["redis", "pools", "--workers", "0"])
    assert result.exit_code == 2
    assert "Invalid value for '--workers': 0 is not in the range x>=1." in result.output


def test_the_header_in_a_real_browser(
    redis_server: Any, redis_server_b: Any, tmp_path: Path
) -> None:
    connections = {"default": {"URL": redis_server.url}, "messages": {"URL": redis_server_b.url}}
    port = free_port()
    command = ["-m", "flask", "--app", "tests.test_flask.browser_app", "run", "--port", str(port)]
    env = {"REDIS_CONN_TEST_CONNECTIONS": json.dumps(connections)}
    with web_server(command, port, env, tmp_path / "flask.log") as base, chromium() as driver:
        driver.get(f"{base}/dashboard")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Flask dashboard"
        (timing,) = server_timing(driver)
        driver.get(f"{base}/async-dashboard")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Flask async dashboard"
        (async_timing,) = server_timing(driver)
    assert (timing["name"], timing["description"]) == ("redis", "3 commands, 3 round trips")
    assert timing["duration"] > 0
    assert async_timing["description"] == "1 command, 1 round trip"
