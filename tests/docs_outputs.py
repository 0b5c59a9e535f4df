"""What the commands and messages shown in docs/ really print (for tests/test_docs.py).

A text block of a page preceded by ``<!-- test: output: NAME -->`` must match what
``SCENARIOS[NAME](request)`` returns: the same command run against the test servers, with
their addresses written back as the documented ones. The comparison (:func:`normalise`)
ignores whitespace runs (tables are aligned to their content, long lines wrapped), PING times
and version numbers; every word, name, message, status and count must be the same.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
Scenario = Callable[[pytest.FixtureRequest], str]
SCENARIOS: dict[str, Scenario] = {}

PING = re.compile(r"(?<![\w.])\d+(?:\.\d+)?ms\b")
VERSION = re.compile(r"(?<![\w.])\d+\.\d+\.\d+(?![\w.])")


def normalise(text: str) -> str:
    text = PING.sub("<ms>", text)
    text = VERSION.sub("<version>", text)
    return " ".join(text.split())


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS[name] = function
        return function

    return register


# -- servers as the documentation shows them -----------------------------------------------------


class Servers:
    """The test servers, and how to write their addresses back as the documented ones."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.a = request.getfixturevalue("redis_server")  # documented as 127.0.0.1:6379
        self.b = request.getfixturevalue("redis_server_b")  # 127.0.0.1:6380, ACL user app
        self.dead_port = free_port()  # 127.0.0.1:6381, nothing listens
        self.password = "app-s3cret-pw"

    @property
    def users_url(self) -> str:
        return f"redis://app:{self.password}@127.0.0.1:{self.b.port}/1"

    @property
    def dead_url(self) -> str:
        return f"redis://127.0.0.1:{self.dead_port}/0"

    def documented(self, text: str) -> str:
        for port, shown in ((self.a.port, 6379), (self.b.port, 6380), (self.dead_port, 6381)):
            text = re.sub(rf"(?<=127\.0\.0\.1:){port}(?!\d)", str(shown), text)
        return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def manage(*args: str, connections: Mapping[str, Any] | None) -> subprocess.CompletedProcess[str]:
    """``python manage.py ARGS`` of the test project, with these REDIS_CONNECTIONS."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.test_django.settings"}
    env["REDIS_CONN_TEST_CONNECTIONS"] = json.dumps(connections)
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


# -- the scenarios ------------------------------------------------------------------------------


@scenario("redis_pools")
def redis_pools(request: pytest.FixtureRequest) -> str:
    servers = Servers(request)
    connections = {
        "default": {"URL": servers.a.url},
        "users": {"URL": servers.users_url, "MAX_CONNECTIONS": 20},
        "sessions": {"ALIAS": "default"},
        "messages": {"URL": servers.dead_url},
    }
    done = manage("redis_pools", connections=connections)
    transcript = (
        f"$ python manage.py redis_pools\n{done.stdout}{done.stderr}$ echo $?\n{done.returncode}"
    )
    return servers.documented(transcript)


@scenario("health_view")
def health_view(request: pytest.FixtureRequest) -> str:
    from django.test import Client

    servers = Servers(request)
    connections = {
        "default": {"URL": servers.a.url},
        "users": {"URL": servers.users_url},
        "sessions": {"ALIAS": "default"},
        "messages": {"URL": servers.dead_url},
    }
    with django_connections(connections):
        # tests/test_django/urls.py routes the view at /healthz/; the page at /healthz/redis/.
        response = Client().get("/healthz/")
    head = "\n".join(f"{name}: {response[name]}" for name in ("Content-Type", "Cache-Control"))
    return (
        f"$ curl -i localhost:8000/healthz/redis/\n"
        f"HTTP/1.1 {response.status_code} {response.reason_phrase}\n{head}\n\n"
        f"{response.content.decode()}"
    )


@contextmanager
def django_connections(connections: Mapping[str, Any]) -> Iterator[None]:
    from django.test.utils import override_settings

    from redis_conn.django.apps import install

    with override_settings(REDIS_CONNECTIONS=connections):
        try:
            yield
        finally:
            install()


def check_transcript(connections: Mapping[str, Any]) -> str:
    done = manage("check", connections=connections)
    assert done.returncode == 1, done.stdout + done.stderr
    return f"$ python manage.py check\n{done.stdout}{done.stderr}"


@scenario("check_django")
def check_django(request: pytest.FixtureRequest) -> str:
    return check_transcript(
        {
            "default": {"URL": "redis://127.0.0.1:6379/0"},
            "users": {"URL": "redis://:s3cret@10.0.0.5:6380/1", "MAX_CONECTIONS": 20},
            "cache": {"URL": "http://:s3cret@10.0.0.7:6379/0"},
        }
    )


@scenario("check_settings")
def check_settings(request: pytest.FixtureRequest) -> str:
    return check_transcript(
        {
            "default": {"URL": "redis://127.0.0.1:6379/0"},
            "users": {"URL": "redis://:s3cret@10.0.0.5:6380/1", "MAX_CONECTIONS": 20},
            "messages": {"URL": "unix:///run/redis.sock?db=2", "POOL_TIMEOUT": "soon"},
            "sessions": {"ALIAS": "defualt"},
        }
    )


@scenario("check_no_default")
def check_no_default(request: pytest.FixtureRequest) -> str:
    return check_transcript({"cache": {"URL": "redis://127.0.0.1:6379/0"}})


@scenario("flask_pools")
def flask_pools(request: pytest.FixtureRequest) -> str:
    from example_flask.app import create_app
    from redis_conn.flask.extension import app_registry

    saved = {key: os.environ.pop(key, None) for key in ("REDIS_URL", "REDIS_USERS_URL")}
    try:
        app = create_app()
        result = app.test_cli_runner().invoke(args=["redis", "pools"])
        app_registry(app).close_all()
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    assert result.exit_code == 0, result.output
    return f"$ flask --app example_flask.app redis pools\n{result.output}"


def failed_flush_record(
    connections: Mapping[str, Any], method: str, path: str, queue: Callable[[Any], None]
) -> logging.LogRecord:
    """The ERROR record of a request whose batch failed to flush."""
    from django.http import HttpResponse
    from django.test import RequestFactory

    from redis_conn import PipelineError
    from redis_conn.django.middleware import RequestPipelineMiddleware

    def view(req: Any) -> HttpResponse:
        queue(req.redis)
        return HttpResponse("ok")

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("redis_conn.request")
    logger.addHandler(handler)
    try:
        with django_connections(connections), pytest.raises(PipelineError):
            RequestPipelineMiddleware(view)(RequestFactory().generic(method, path))
    finally:
        logger.removeHandler(handler)
    [record] = records
    return record


@scenario("flush_error_log")
def flush_error_log(request: pytest.FixtureRequest) -> str:
    dead = f"redis://127.0.0.1:{free_port()}/0"

    def queue(redis: Any) -> None:
        redis.set("order:1", "{...}")
        redis.incrby("hits", 1)
        redis["users"].incrby("hits", 1)

    connections = {"default": {"URL": dead}, "users": {"URL": dead}}
    record = failed_flush_record(connections, "POST", "/orders/", queue)
    return f"{record.levelname} {record.name}: {record.getMessage()}"


@scenario("flush_error_production")
def flush_error_production(request: pytest.FixtureRequest) -> str:
    servers = Servers(request)

    def queue(redis: Any) -> None:
        redis.set("outbox:1", "hello")  # default is up: this one lands
        redis["messages"].lpush("inbox", "hello")
        redis["messages"].lpush("inbox", "again")
        redis["messages"].incrby("unread", 2)

    connections = {"default": {"URL": servers.a.url}, "messages": {"URL": servers.dead_url}}
    return failed_flush_record(connections, "POST", "/send/", queue).getMessage()


@scenario("pool_exhausted")
def pool_exhausted(request: pytest.FixtureRequest) -> str:
    from redis_conn import ConnectionRegistry, PoolExhausted

    server = request.getfixturevalue("redis_server")
    registry = ConnectionRegistry(
        {"tight": {"URL": server.url, "BLOCKING": False, "MAX_CONNECTIONS": 4}}
    )
    pool = registry.get("tight").connection_pool
    held = [pool.get_connection() for _ in range(4)]
    try:
        with pytest.raises(PoolExhausted) as excinfo:
            pool.get_connection()
    finally:
        for connection in held:
            pool.release(connection)
        registry.close_all()
    return str(excinfo.value)


@scenario("refused_setname")
def refused_setname(request: pytest.FixtureRequest) -> str:
    """A user whose ACL forbids CLIENT SETNAME, on a connection named shop:users."""
    from redis_conn import ConnectionRegistry

    servers = Servers(request)
    with servers.b.client() as admin:
        admin.acl_setuser(
            "nosetname", enabled=True, passwords=["+pw"], keys=["*"],
            commands=["+@all", "-client|setname"],
        )  # fmt: skip
    registry = ConnectionRegistry(
        {"users": {"URL": f"redis://nosetname:pw@127.0.0.1:{servers.b.port}/0", "RETRY": 0}},
        client_name_prefix="shop",
    )
    try:
        with pytest.raises(Exception) as excinfo:
            registry.get("users").ping()
    finally:
        registry.close_all()
        with servers.b.client() as admin:
            admin.acl_deluser("nosetname")
    error = excinfo.value
    return f"{type(error).__module__}.{type(error).__name__}: {error}"


@scenario("budget_table")
def budget_table(request: pytest.FixtureRequest) -> str:
    """``redis_pools --workers 3`` where two workers hold 3 named sockets each (stood in for
    here by six sockets named like theirs) on a server whose maxclients is 20."""
    import redis

    from redis_conn import ConnectionRegistry
    from redis_conn.health_text import render

    servers = Servers(request)
    held = [redis.Redis(port=servers.a.port, client_name="shop:jobs") for _ in range(6)]
    with servers.a.client() as admin:
        admin.config_set("maxclients", 20)
        registry = ConnectionRegistry(
            {"jobs": {"URL": servers.a.url, "MAX_CONNECTIONS": 6}}, client_name_prefix="shop"
        )
        try:
            for client in held:
                client.ping()
            report = registry.health(workers=3)
        finally:
            for client in held:
                client.close()
            registry.close_all()
            admin.config_set("maxclients", 10000)
    return servers.documented(f"$ python manage.py redis_pools --workers 3\n{render(report)}")


@scenario("multiplex_lost_write")
def multiplex_lost_write(request: pytest.FixtureRequest) -> str:
    """A MULTIPLEX connection lost while an INCRBY waits for its reply (held by CLIENT PAUSE
    WRITE, then the shared connection killed)."""
    import asyncio

    from redis_conn import ConnectionRegistry

    server = request.getfixturevalue("redis_server")
    registry = ConnectionRegistry({"default": {"URL": server.url, "MULTIPLEX": True}})

    async def lose() -> BaseException:
        r = registry.get_async()
        shared = await r.client_id()
        with server.client() as admin:
            admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
            try:
                waiting = asyncio.create_task(r.incr("hits"))
                for _ in range(5000):  # until it is written (bounded: 5 s)
                    if r.multiplexer.in_flight and not r.multiplexer._pending:
                        break
                    await asyncio.sleep(0.001)
                admin.client_kill_filter(_id=shared)
                [error] = await asyncio.gather(waiting, return_exceptions=True)
            finally:
                admin.execute_command("CLIENT", "UNPAUSE")
        await registry.aclose_async()
        assert isinstance(error, BaseException)
        return error

    try:
        return str(asyncio.run(lose()))
    finally:
        registry.close_all()
