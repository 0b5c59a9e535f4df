"""``manage.py redis_pools``: text and JSON output, --connection, --no-ping, exit codes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from redis_conn.django.management.commands.redis_pools import Command

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "app-s3cret-pw"  # redis_server_b's ACL user


@pytest.fixture
def configured(settings: Any, redis_server: Any, redis_server_b: Any) -> dict[str, Any]:
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": redis_server.url},
        "users": {"URL": redis_server_b.acl_url, "MAX_CONNECTIONS": 20},
        "sessions": {"ALIAS": "default"},
        "dev": {"FAKE": True},
    }
    return settings.REDIS_CONNECTIONS  # type: ignore[no-any-return]


@pytest.fixture
def one_down(configured: dict[str, Any], settings: Any, killable_server: Any) -> dict[str, Any]:
    settings.REDIS_CONNECTIONS = {**configured, "down": {"URL": killable_server.url, "RETRY": 0}}
    killable_server.kill()
    return settings.REDIS_CONNECTIONS  # type: ignore[no-any-return]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("redis_pools", *args, stdout=out)
    return out.getvalue()


def test_text_report_all_reachable(configured: Any, redis_server: Any, redis_server_b: Any) -> None:
    lines = run().splitlines()
    assert lines[0].split() == ["NAME", "KIND", "TARGET", "STATUS", "PING", "POOL", "SERVER"]
    rows = {line.split()[0]: line.split() for line in lines[1:5]}
    assert rows["default"][1:4] == ["standalone", redis_server.url, "ok"]
    assert rows["users"][1:4] == [
        "standalone",
        redis_server_b.acl_url.replace(PASSWORD, "***"),
        "ok",
    ]
    assert rows["users"][5] == "0/0/20"  # in use/created/max: the probe is not the pool's
    assert rows["sessions"][1:3] == ["->", "default"]
    assert rows["dev"][1:4] == ["fake", "fakeredis://", "ok"]
    assert lines[-1] == "overall: ok  (POOL = in use/created/max)"


def test_json_report(configured: Any, redis_server: Any) -> None:
    report = json.loads(run("--json"))
    assert report["status"] == "ok"
    assert [c["name"] for c in report["connections"]] == ["default", "users", "sessions", "dev"]
    default = report["connections"][0]
    assert default["alias_of"] is None and default["kind"] == "standalone"
    assert default["target"] == redis_server.url
    assert default["pool"]["class"] == "BlockingConnectionPool"
    assert default["server"]["role"] == "master"
    assert report["connections"][2]["alias_of"] == "default"


def test_passwords_are_never_shown(one_down: Any) -> None:
    for args in ((), ("--json",)):
        out = io.StringIO()
        with pytest.raises(CommandError):
            call_command("redis_pools", *args, stdout=out)
        assert PASSWORD not in out.getvalue()
        assert "app:***@" in out.getvalue()


def test_one_server_down_exits_1_and_names_it(one_down: Any, killable_server: Any) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("redis_pools", stdout=out)
    assert excinfo.value.returncode == 1
    assert str(excinfo.value) == "Unreachable Redis connection: 'down'."
    text = out.getvalue()
    row = next(line for line in text.splitlines() if line.startswith("down "))
    assert row.split()[1:4] == ["standalone", killable_server.url, "down"]
    error = next(line for line in text.splitlines() if line.startswith("down: "))
    assert f"127.0.0.1:{killable_server.port}. Connection refused." in error
    assert text.splitlines()[-1] == "overall: degraded  (POOL = in use/created/max)"


def test_one_server_down_json(one_down: Any) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("redis_pools", "--json", stdout=out)
    assert excinfo.value.returncode == 1
    report = json.loads(out.getvalue())  # stdout is pure JSON; the error goes to stderr
    assert report["status"] == "degraded"
    down = report["connections"][-1]
    assert (down["name"], down["status"]) == ("down", "down")
    assert down["error"].startswith("ConnectionError: ")
    assert "Connection refused" in down["error"]


def test_connection_selects_and_repeats(one_down: Any) -> None:
    report = json.loads(run("--json", "--connection", "users", "--connection", "default",
                            "--connection", "users"))  # fmt: skip
    assert [c["name"] for c in report["connections"]] == ["users", "default"]


def test_connection_choices_come_from_the_settings(one_down: Any) -> None:
    with pytest.raises(CommandError) as excinfo:
        run("--connection", "nope")
    assert "argument --connection: invalid choice: 'nope'" in str(excinfo.value)
    for name in ("default", "users", "sessions", "dev", "down"):
        assert repr(name) in str(excinfo.value)


def test_no_ping_does_not_contact_the_servers(configured: Any, server_a: Any) -> None:
    before = server_a.info("stats")["total_connections_received"]
    lines = run("--no-ping").splitlines()
    assert server_a.info("stats")["total_connections_received"] == before
    rows = {line.split()[0]: line.split() for line in lines[1:5]}
    assert rows["default"][4:] == ["-", "0/0/50", "-"]


def test_help_describes_every_option(configured: Any) -> None:
    parser = Command().create_parser("manage.py", "redis_pools")
    ours = {a.dest: a for a in parser._actions if a.dest in ("connection", "json", "no_ping")}
    assert set(ours) == {"connection", "json", "no_ping"}
    assert all(action.help for action in ours.values())
    assert ours["connection"].choices == ["default", "users", "sessions", "dev"]
    assert parser.description == Command.help
    assert "Exits with status 0 when every connection is reachable, 1 otherwise." in Command.help


def manage(*args: str, connections: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.test_django.settings",
        "PYTHONPATH": str(REPO),
        "REDIS_CONN_TEST_CONNECTIONS": json.dumps(connections),
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "redis_pools", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_manage_py_exit_status(redis_server: Any, killable_server: Any) -> None:
    up = {"default": {"URL": redis_server.url}}
    ok = manage("--json", connections=up)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "ok"
    killable_server.kill()
    down = {**up, "down": {"URL": killable_server.url, "RETRY": 0}}
    failed = manage(connections=down)
    assert failed.returncode == 1
    assert failed.stderr.strip() == "CommandError: Unreachable Redis connection: 'down'."
    assert "down" in failed.stdout
    only_up = manage("--connection", "default", connections=down)
    assert only_up.returncode == 0, only_up.stderr


# -- the budget is per server, whatever the report shows ----------------------------------------

BUDGET_PROBLEM = (
    "connection budget: 70 workers x MAX_CONNECTIONS 80 = 5600 connections, 9100 with the "
    "other connections to that server, 91% of maxclients 10000 (more than 80%); lower "
    "MAX_CONNECTIONS to 64, run fewer workers, or raise maxclients"
)


@pytest.fixture
def shared_server(settings: Any, redis_server: Any, server_a: Any) -> dict[str, Any]:
    """Two connections on server A: each fits in its maxclients alone, not together."""
    assert server_a.config_get("maxclients") == {"maxclients": "10000"}
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": redis_server.url},  # 50 x 70 = 3500
        "users": {"URL": redis_server.url.replace("/0", "/1"), "MAX_CONNECTIONS": 80},
        "dev": {"FAKE": True},
    }
    return settings.REDIS_CONNECTIONS  # type: ignore[no-any-return]


def test_a_filtered_report_counts_every_connection_on_the_server(shared_server: Any) -> None:
    full = {c["name"]: c for c in json.loads(run("--json", "--workers", "70"))["connections"]}
    assert full["users"]["status"] == "degraded"
    assert full["users"]["error"] == BUDGET_PROBLEM
    (users,) = json.loads(run("--json", "--workers", "70", "--connection", "users"))["connections"]
    assert users["status"] == "degraded"
    assert users["error"] == BUDGET_PROBLEM
    assert (
        users["budget"]
        == full["users"]["budget"]
        == {
            "workers": 70,
            "max_connections": 80,
            "total": 5600,
            "server_total": 9100,
            "maxclients": 10000,
            "percent": 91.0,
        }
    )
    text = run("--workers", "70", "--connection", "users").splitlines()
    assert text[1].split()[3] == "degraded" and text[1].split()[-2:] == ["9100", "(91%)"]
    assert text[2] == f"users: {BUDGET_PROBLEM}"


def test_the_pool_column_counts_the_asyncio_pools(configured: Any) -> None:
    from redis_conn import get_async_redis

    async def main() -> tuple[str, str]:
        pool: Any = get_async_redis("users").connection_pool
        leased = [await pool.get_connection() for _ in range(3)]
        await pool.release(leased.pop())
        try:
            # The command is synchronous: it reads the loop's pool while the loop waits.
            return run("--json", "--connection", "users"), run("--connection", "users")
        finally:
            for connection in leased:
                await pool.release(connection)

    as_json, as_text = asyncio.run(main())
    (users,) = json.loads(as_json)["connections"]
    assert users["pool"] == {
        "class": "BlockingConnectionPool",
        "max_connections": 20,
        "created": 3,
        "in_use": 2,
        "idle": 1,
        "asyncio": {"pools": 1, "created": 3, "in_use": 2},
    }
    lines = as_text.splitlines()
    assert lines[1].split()[5] == "2/3/20"
    assert (
        lines[2]
        == "users: POOL counts 3 asyncio connection(s) (2 in use) in the pools of 1 event loop(s)"
    )
