"""``flask redis pools``: the shared health report, through app.test_cli_runner()."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from redis_conn.flask import RedisConn
from redis_conn.health import build_report, exit_code
from redis_conn.health_text import render

MakeApp = Callable[..., Flask]


@pytest.fixture
def app(make_app: MakeApp, two_servers: dict[str, Any]) -> Flask:
    return make_app(two_servers)


def pools(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["redis", "pools", *args])


def test_the_group_and_command_are_documented(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["redis", "pools", "--help"])
    assert result.exit_code == 0
    for option in ("--json", "--connection NAME", "--no-ping"):
        assert option in result.output
    assert "Exits with status 0 when every connection is reachable" in result.output


def test_text_report(app: Flask, redis_server: Any, redis_server_b: Any) -> None:
    result = pools(app)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "TARGET", "STATUS", "PING", "POOL", "SERVER"]
    pattern = r"{name}\s+standalone\s+{target}\s+ok\s+[\d.]+ms\s+\d+/\d+/50\s+\d+\.\d+\.\d+ master"
    assert re.fullmatch(
        pattern.format(name="default", target=re.escape(redis_server.url)), lines[1]
    )
    assert re.fullmatch(
        pattern.format(name="messages", target=re.escape(redis_server_b.url)), lines[2]
    )
    assert re.fullmatch(
        pattern.format(name="sessions -> default", target=re.escape(redis_server.url)), lines[3]
    )
    assert lines[4:] == ["overall: ok  (POOL = in use/created/max)"]


def test_json_report_is_the_shared_report(app: Flask, redis_server: Any) -> None:
    result = pools(app, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "ok"
    assert [(c["name"], c["alias_of"], c["status"]) for c in report["connections"]] == [
        ("default", None, "ok"),
        ("messages", None, "ok"),
        ("sessions", "default", "ok"),
    ]
    default = report["connections"][0]
    assert default["kind"] == "standalone"
    assert default["target"] == redis_server.url
    assert default["pool"]["class"] == "BlockingConnectionPool"
    assert default["pool"]["max_connections"] == 50
    assert default["server"]["role"] == "master"
    assert isinstance(default["ping_ms"], float)
    # The very renderer and exit code the Django command uses.
    with app.app_context():
        again = app.extensions["redis_conn"].registry.health(ping=False)
    assert json.loads(render(again, as_json=True)) == again
    assert exit_code(again) == 0


def test_connection_is_repeatable_and_keeps_the_order(app: Flask) -> None:
    result = pools(app, "--json", "--connection", "sessions", "--connection", "messages")
    assert result.exit_code == 0, result.output
    names = [c["name"] for c in json.loads(result.output)["connections"]]
    assert names == ["sessions", "messages"]


def test_an_unknown_connection_is_a_usage_error(app: Flask) -> None:
    result = pools(app, "--connection", "default", "--connection", "nope")
    assert result.exit_code == 2
    assert (
        "Error: Invalid value for '--connection': Redis connection 'nope' is not configured. "
        "Configured connections: 'default', 'messages', 'sessions'."
    ) in result.output


def test_no_ping_does_not_contact_the_servers(make_app: MakeApp, killable_server: Any) -> None:
    app = make_app({"default": {"URL": killable_server.url, "RETRY": 0}})
    killable_server.kill()
    result = pools(app, "--json", "--no-ping")
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.output)["connections"]
    assert (entry["status"], entry["ping_ms"], entry["server"]) == ("ok", None, None)
    assert entry["pool"]["created"] == 0


def test_a_server_that_is_down_exits_1(
    make_app: MakeApp, killable_server: Any, redis_server: Any
) -> None:
    app = make_app(
        {
            "cache": {"URL": killable_server.url, "RETRY": 0, "SOCKET_CONNECT_TIMEOUT": 1},
            "default": {"URL": redis_server.url},
        }
    )
    killable_server.kill()
    result = pools(app, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["status"] == "degraded"
    cache, default = report["connections"]
    assert (cache["status"], default["status"]) == ("down", "ok")
    assert cache["error"].startswith("ConnectionError: ")

    text = pools(app)
    assert text.exit_code == 1
    lines = text.output.splitlines()
    assert lines[1].split()[:4] == ["cache", "standalone", killable_server.url, "down"]
    assert lines[-2] == f"cache: {cache['error']}"
    assert lines[-1] == "overall: degraded  (POOL = in use/created/max)"

    only_default = pools(app, "--connection", "default")
    assert only_default.exit_code == 0


def test_passwords_never_reach_the_report(make_app: MakeApp, redis_server_b: Any) -> None:
    app = make_app({"default": {"URL": redis_server_b.acl_url}})
    result = pools(app, "--json")
    assert result.exit_code == 0, result.output
    assert redis_server_b.acl_password not in result.output
    target = json.loads(result.output)["connections"][0]["target"]
    assert target == f"redis://app:***@127.0.0.1:{redis_server_b.port}/0"


def test_each_app_reports_its_own_connections(rc: RedisConn, make_app: MakeApp) -> None:
    first = make_app({"default": {"FAKE": True}})
    second = make_app({"default": {"FAKE": True}, "users": {"FAKE": True}})
    assert [c["name"] for c in json.loads(pools(first, "--json").output)["connections"]] == [
        "default"
    ]
    second_report = json.loads(pools(second, "--json").output)
    assert [c["name"] for c in second_report["connections"]] == ["default", "users"]
    assert second_report["connections"][1]["kind"] == "fake"
    with second.app_context():
        assert second_report["status"] == build_report(rc.registry)["status"] == "ok"
