"""The example site (example_django/): its pages on real servers, and its one-command demo.

In-process, the pages run through Django's test client with the example's URLconf,
middleware and ``connections_from_env()`` pointed at the session servers, and the tests read
the servers directly. In subprocesses, ``manage.py`` runs as a user runs it: on its FAKE
default, with no server, and on real servers given by environment variables.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from django.test import AsyncClient, Client

from example_django.example_site import settings as example_settings
from redis_conn.django.apps import install
from redis_conn.registry import connections

ROOT = Path(__file__).resolve().parent.parent
MANAGE = "example_django/manage.py"  # run from the checkout's root, as the README says
START_TIMEOUT = 20.0


@pytest.fixture(autouse=True)
def registry_from_settings() -> Iterator[None]:
    install()
    yield
    install()


def use_example(settings: Any, environ: Mapping[str, str]) -> None:
    """The test settings become the example's: URLs, middleware, connections from ``environ``."""
    settings.ROOT_URLCONF = "example_django.example_site.urls"
    settings.MIDDLEWARE = example_settings.MIDDLEWARE
    settings.REDIS_CONNECTIONS = example_settings.connections_from_env(environ)


@pytest.fixture
def real_a(redis_server: Any) -> Iterator[Any]:
    client = redis_server.client(decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def real_b(redis_server_b: Any) -> Iterator[Any]:
    client = redis_server_b.client(decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def on_real_servers(settings: Any, redis_server: Any, redis_server_b: Any) -> None:
    """default on A (db 0), activity on B, cache on A's db 2."""
    use_example(
        settings,
        {
            "REDIS_URL": redis_server.url,
            "REDIS_ACTIVITY_URL": redis_server_b.url,
            "REDIS_CACHE_URL": redis_server.url.replace("/0", "/2"),
        },
    )


# -- settings from the environment -----------------------------------------------------------


def test_connections_default_to_fake() -> None:
    assert example_settings.connections_from_env({}) == {
        "default": {"FAKE": True, "OPTIONS": {"decode_responses": True}},
        "activity": {"FAKE": True, "OPTIONS": {"decode_responses": True}},
        "sessions": {"ALIAS": "default"},
        "cache": {"FAKE": True, "OPTIONS": {"decode_responses": True}},
    }


def test_connections_from_urls_and_cluster_flag() -> None:
    environ = {
        "REDIS_URL": "redis://10.0.0.1:6390/0",
        "REDIS_CACHE_URL": "redis://10.0.0.2:7000",
        "REDIS_CACHE_CLUSTER": "1",
    }
    assert example_settings.connections_from_env(environ) == {
        "default": {"URL": "redis://10.0.0.1:6390/0", "OPTIONS": {"decode_responses": True}},
        "activity": {"FAKE": True, "OPTIONS": {"decode_responses": True}},
        "sessions": {"ALIAS": "default"},
        "cache": {
            "URL": "redis://10.0.0.2:7000",
            "CLUSTER": True,
            "OPTIONS": {"decode_responses": True},
        },
    }


# -- the pages on real servers ---------------------------------------------------------------


@pytest.mark.usefixtures("on_real_servers")
def test_home_counts_and_records_on_the_real_servers(
    client: Client, redis_server: Any, real_a: Any, real_b: Any
) -> None:
    for _ in range(2):
        response = client.get("/", {"user": "ann"})
        assert response.status_code == 200
        assert b"Hello, ann." in response.content
    assert real_a.get("hits:home") == "2"
    assert real_a.hget("session:ann", "last_seen") is not None  # "sessions" is default's alias
    assert real_b.llen("feed:ann") == 2
    assert real_b.lindex("feed:ann", 0).endswith(" visited the home page")
    cache = redis_server.client(db=2, decode_responses=True)
    try:
        assert cache.get("cache:{home}:last_visitor") == "ann"
    finally:
        cache.close()


@pytest.mark.usefixtures("on_real_servers")
def test_dashboard_reads_mid_view(client: Client, real_a: Any, real_b: Any) -> None:
    client.get("/", {"user": "bob"})
    response = client.get("/api/stats/", {"user": "bob"})
    stats = response.json()
    assert stats["hits"] == {"home": 1, "dashboard": 1}
    assert [entry.split(" ", 1)[1] for entry in stats["feed"]] == ["visited the home page"]
    assert stats["last_visitor"] == "bob"
    assert isinstance(stats["last_seen"], int)
    assert {n: c["kind"] for n, c in stats["connections"].items()} == {
        "default": "standalone",
        "activity": "standalone",
        "sessions": "standalone",
        "cache": "standalone",
    }
    # Queued after execute(): sent by the middleware once the view returned.
    assert real_b.lindex("feed:bob", 0).endswith(" looked at the dashboard")
    page = client.get("/dashboard/", {"user": "bob"})
    assert page.status_code == 200
    assert b"Home page hits: <b>1</b> \xc2\xb7 dashboard hits: <b>2</b>" in page.content
    assert real_a.get("hits:dashboard") == "2"


@pytest.mark.usefixtures("on_real_servers")
def test_visitor_names_are_plain(client: Client, real_b: Any) -> None:
    client.get("/", {"user": "<script>"})
    assert real_b.keys() == ["feed:guest"]


@pytest.mark.usefixtures("on_real_servers")
def test_health_view(client: Client) -> None:
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "connections": [
            {"name": name, "status": "ok"} for name in ("default", "activity", "sessions", "cache")
        ],
    }


@pytest.mark.usefixtures("on_real_servers")
def test_pages_under_asgi(real_a: Any, real_b: Any) -> None:
    async def visit() -> list[int]:
        client = AsyncClient()
        home = await client.get("/", {"user": "ann"})
        stats = await client.get("/api/stats/", {"user": "ann"})
        return [home.status_code, stats.json()["hits"]["home"]]

    assert asyncio.run(visit()) == [200, 1]
    assert real_a.get("hits:home") == "1"
    assert real_b.llen("feed:ann") == 2


def test_cache_on_a_cluster(
    settings: Any, client: Client, redis_server: Any, redis_cluster: Any
) -> None:
    use_example(
        settings,
        {
            "REDIS_URL": redis_server.url,
            "REDIS_CACHE_URL": redis_cluster.url,
            "REDIS_CACHE_CLUSTER": "1",
        },
    )
    client.get("/", {"user": "cyd"})
    stats = client.get("/api/stats/", {"user": "cyd"}).json()
    assert stats["last_visitor"] == "cyd"
    assert stats["connections"]["cache"]["kind"] == "cluster"
    cluster = redis_cluster.client(decode_responses=True)
    try:
        assert cluster.get("cache:{home}:last_visitor") == "cyd"
    finally:
        cluster.close()
    assert client.get("/health/").status_code == 200
    assert connections.spec("activity").kind == "fake"


# -- manage.py, as a user runs it --------------------------------------------------------------


def example_env(**redis_urls: str) -> dict[str, str]:
    """The environment of a user's shell: no test settings, only the URLs given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "DJANGO_")) and k != "PYTHONPATH"
    }
    env.update(redis_urls)
    return env


def manage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", MANAGE, *args],
        cwd=ROOT,
        env=env or example_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_manage_check_passes() -> None:
    result = manage("check")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "System check identified no issues (0 silenced).\n"
    assert result.stderr == ""


def test_wsgi_and_asgi_entry_points_load() -> None:
    code = (
        "import example_site.asgi, example_site.wsgi; "
        "print(type(example_site.wsgi.application).__name__, "
        "type(example_site.asgi.application).__name__, "
        "type(example_site.asgi.application.app).__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=ROOT / "example_django",
        env=example_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "WSGIHandler RedisLifespan ASGIHandler\n"


def test_redis_pools_json_on_the_fake_default() -> None:
    result = manage("redis_pools", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "ok"
    assert [(c["name"], c["alias_of"], c["kind"]) for c in report["connections"]] == [
        ("default", None, "fake"),
        ("activity", None, "fake"),
        ("sessions", "default", "fake"),
        ("cache", None, "fake"),
    ]


def test_redis_pools_table_on_real_servers(redis_server: Any, redis_server_b: Any) -> None:
    env = example_env(REDIS_URL=redis_server.url, REDIS_ACTIVITY_URL=redis_server_b.url)
    result = manage("redis_pools", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "TARGET", "STATUS", "PING", "POOL", "SERVER"]
    assert lines[1].split()[:4] == ["default", "standalone", redis_server.url, "ok"]
    assert lines[2].split()[:4] == ["activity", "standalone", redis_server_b.url, "ok"]
    alias = ["sessions", "->", "default", "standalone", redis_server.url, "ok"]
    assert lines[3].split()[:6] == alias
    assert lines[4].split()[:4] == ["cache", "fake", "fakeredis://", "ok"]
    assert lines[-1] == "overall: ok  (POOL = in use/created/max)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def test_the_demo_command_serves_the_site_with_no_redis_server() -> None:
    """``python example_django/manage.py runserver`` (without the autoreloader, to stop it)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-W", "error", MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=example_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                status, body = fetch(f"{base}/?user=ann")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        assert status == 200 and "Hello, ann." in body
        fetch(f"{base}/?user=ann")
        stats = json.loads(fetch(f"{base}/api/stats/?user=ann")[1])
        assert stats["hits"] == {"home": 2, "dashboard": 1}
        assert len(stats["feed"]) == 2
        assert {c["kind"] for c in stats["connections"].values()} == {"fake"}
        status, body = fetch(f"{base}/dashboard/?user=ann")
        assert status == 200 and "FAKE connections keep their data in this process" in body
        assert json.loads(fetch(f"{base}/health/")[1])["status"] == "ok"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert "Traceback" not in output, output
