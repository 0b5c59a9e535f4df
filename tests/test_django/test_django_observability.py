"""Django: names on the server, budget checks, ``redis_pools --workers``, Server-Timing, and the
debug toolbar panel in a real browser."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.core.management.base import CommandError
from django.template.loader import render_to_string
from django.test import AsyncClient, Client
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from redis_conn import get_redis
from redis_conn.django.checks import check_settings
from redis_conn.django.panels import RedisPanel, panel_stats
from redis_conn.request_scope import RequestPipeline, RequestStats

try:
    from browser import chromium, free_port, server_timing, web_server
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.browser import chromium, free_port, server_timing, web_server

DOCS_STATIC = Path(__file__).resolve().parents[2] / "docs" / "_static"
TIMING = re.compile(r'redis;dur=\d+\.\d;desc="(?P<desc>[^"]*)"')


# -- names on the server --------------------------------------------------------------------


def test_connections_are_named_after_the_project(real_servers: Any, settings: Any) -> None:
    # The test settings module is tests.test_django.settings: the project is "tests".
    assert get_redis("default").client_getname() == "tests:default"
    assert get_redis("messages").client_getname() == "tests:messages"
    settings.REDIS_CONN_CLIENT_NAME_PREFIX = "shop"
    assert get_redis("default").client_getname() == "shop:default"
    settings.REDIS_CONN_CLIENT_NAME_PREFIX = None
    assert get_redis("default").client_getname() == "default"


def test_client_name_false_sends_no_name(settings: Any, redis_server: Any) -> None:
    settings.REDIS_CONNECTIONS = {"default": {"URL": redis_server.url, "CLIENT_NAME": False}}
    assert get_redis("default").client_getname() is None


# -- system checks ----------------------------------------------------------------------------


def by_id(messages: list[Any], prefix: str) -> list[Any]:
    return [m for m in messages if m.id.startswith(prefix)]


def test_w005_when_the_workers_pools_exceed_a_default_server(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": "redis://10.0.0.5:6390/0"},
        "users": {"URL": "redis://10.0.0.5:6390/1", "MAX_CONNECTIONS": 100},
        "sessions": {"ALIAS": "default"},
        "other": {"URL": "redis://10.0.0.6:6390/0"},
    }
    assert by_id(check_settings(), "redis_conn.W006") == []  # workers unknown: no budget
    settings.REDIS_CONN_WORKERS = 60
    (warning,) = by_id(check_settings(), "redis_conn.W006")
    assert warning == Warning(
        "Redis connections 'default' and 'users' may open 9000 connections to "
        "redis://10.0.0.5:6390: MAX_CONNECTIONS 50 + 100 = 150 per worker process x 60 workers "
        "(REDIS_CONN_WORKERS), more than 80% of the 10000 clients a Redis server accepts by "
        "default (maxclients).",
        hint="Lower MAX_CONNECTIONS or run fewer workers; if the server's maxclients is higher, "
        "silence redis_conn.W006. 'manage.py redis_pools --workers 60' checks the budget "
        "against the server's real maxclients.",
        obj="REDIS_CONNECTIONS['default']",
        id="redis_conn.W006",
    )
    del settings.REDIS_CONN_WORKERS
    monkeypatch.setenv("WEB_CONCURRENCY", "200")
    warnings = by_id(check_settings(), "redis_conn.W006")
    assert [w.msg.split(" may open ")[0] for w in warnings] == [
        "Redis connections 'default' and 'users'",
        "Redis connection 'other'",
    ]
    assert "x 200 workers ($WEB_CONCURRENCY)" in warnings[1].msg


def test_observability_settings_are_checked(settings: Any) -> None:
    settings.REDIS_CONN_WORKERS = 0
    settings.REDIS_CONN_SERVER_TIMING = "yes"
    settings.REDIS_CONN_CLIENT_NAME_PREFIX = 7
    errors = by_id(check_settings(), "redis_conn.E10")
    assert errors == [
        Error(
            "REDIS_CONN_WORKERS is 0; it must be a whole number >= 1.",
            hint="Set it to the number of worker processes your server runs, or remove it.",
            obj="REDIS_CONN_WORKERS",
            id="redis_conn.E104",
        ),
        Error(
            "REDIS_CONN_SERVER_TIMING is 'yes'; it must be True or False.",
            obj="REDIS_CONN_SERVER_TIMING",
            id="redis_conn.E105",
        ),
        Error(
            "REDIS_CONN_CLIENT_NAME_PREFIX is 7; it must be a string or None.",
            hint="Leave it out to use the project's package, or set None (or '') to send the "
            "bare connection names.",
            obj="REDIS_CONN_CLIENT_NAME_PREFIX",
            id="redis_conn.E106",
        ),
    ]


# -- redis_pools --workers ----------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("redis_pools", *args, stdout=out)
    return out.getvalue()


def test_redis_pools_workers_adds_the_budget(
    real_servers: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    report = json.loads(run("--json", "--connection", "default"))
    (entry,) = report["connections"]
    # The command's own probe is named <name>:probe and never counted; no app runs here.
    assert entry["server_connections"] == 0 and entry["maxclients"] == 10000
    assert entry["budget"] is None
    report = json.loads(run("--json", "--connection", "default", "--workers", "4"))
    assert report["connections"][0]["budget"] == {
        "workers": 4,
        "max_connections": 50,
        "total": 200,
        "server_total": 200,
        "maxclients": 10000,
        "percent": 2.0,
    }
    settings.REDIS_CONN_WORKERS = 3  # the default of --workers
    report = json.loads(run("--json", "--connection", "default"))
    assert report["connections"][0]["budget"]["workers"] == 3
    del settings.REDIS_CONN_WORKERS
    monkeypatch.setenv("WEB_CONCURRENCY", "5")
    text = run("--connection", "default")
    assert text.splitlines()[0].split()[-2:] == ["NAMED", "BUDGET"]
    assert text.splitlines()[1].endswith("250 (2.5%)")
    with pytest.raises(CommandError) as excinfo:
        call_command("redis_pools", "--workers", "0")
    assert str(excinfo.value) == "Error: argument --workers: '0' is not a whole number >= 1"


def test_the_health_view_does_not_count_sockets(real_servers: Any) -> None:
    from django.contrib.auth.models import User
    from django.test import RequestFactory

    from redis_conn.django.views import health

    request = RequestFactory().get("/healthz/")
    request.user = User(username="ops", is_staff=True)
    body = json.loads(health(request).content)
    # A probe every few seconds must not run CLIENT LIST (O(clients)) on the server each time.
    assert [(c["server_connections"], c["maxclients"]) for c in body["connections"]] == [
        (None, None),
        (None, None),
    ]
    assert body["connections"][0]["server"]["role"] == "master"


# -- Server-Timing ------------------------------------------------------------------------------


@pytest.fixture
def timing_urls(settings: Any, real_servers: Any) -> Any:
    settings.ROOT_URLCONF = "tests.test_django.timing_urls"
    return settings


def test_server_timing_is_off_by_default(timing_urls: Any) -> None:
    response = Client().get("/dashboard/")
    assert response.status_code == 200
    assert "Server-Timing" not in response.headers


def test_server_timing_counts_commands_and_round_trips_wsgi(timing_urls: Any) -> None:
    timing_urls.REDIS_CONN_SERVER_TIMING = True
    response = Client().get("/dashboard/")
    match = TIMING.fullmatch(response.headers["Server-Timing"])
    assert match is not None, response.headers["Server-Timing"]
    assert match["desc"] == "4 commands, 3 round trips"
    assert "Server-Timing" not in Client().get("/quiet/").headers  # no Redis, no header


def test_server_timing_asgi_and_an_existing_header_is_kept(timing_urls: Any) -> None:
    timing_urls.REDIS_CONN_SERVER_TIMING = True

    async def fetch() -> Any:
        return await AsyncClient().get("/async/dashboard/")

    import asyncio

    response = asyncio.run(fetch())
    match = TIMING.fullmatch(response.headers["Server-Timing"])
    assert match is not None and match["desc"] == "2 commands, 2 round trips"
    response = Client().get("/timed/")
    app, ours = response.headers["Server-Timing"].split(", ", 1)
    assert app == "app;dur=12"
    assert TIMING.fullmatch(ours)["desc"] == "1 command, 1 round trip"  # type: ignore[index]


# -- the debug toolbar panel --------------------------------------------------------------------


def test_panel_stats_show_names_and_keys_never_values(real_servers: Any) -> None:
    scope = RequestPipeline()
    p = scope.pipeline
    p.set("greeting", "s3cret-value")
    p.execute()
    p.incr("page:views")
    p["messages"].lpush("audit:log", "s3cret-entry")
    scope.flush()
    stats = panel_stats(scope.stats)
    assert "s3cret" not in json.dumps(stats)
    assert {k: stats[k] for k in ("commands", "round_trips", "saved")} == {
        "commands": 3,
        "round_trips": 3,
        "saved": 0,
    }
    assert stats["connections"] == [
        {"connection": "default", "commands": 2, "round_trips": 2},
        {"connection": "messages", "commands": 1, "round_trips": 1},
    ]
    assert stats["executes"] == [
        {
            "number": 1,
            "batches": [
                {"connection": "default", "commands": [{"command": "SET greeting", "status": "ok"}]}
            ],
        },
        {
            "number": 2,
            "batches": [
                {
                    "connection": "default",
                    "commands": [{"command": "INCRBY page:views", "status": "ok"}],
                },
                {
                    "connection": "messages",
                    "commands": [{"command": "LPUSH audit:log", "status": "ok"}],
                },
            ],
        },
    ]


def test_the_panel_lists_the_reads_the_client_cache_answered(
    settings: Any, redis_server: Any
) -> None:
    settings.REDIS_CONNECTIONS = {"default": {"URL": redis_server.url, "CLIENT_CACHE": True}}
    settings.TEMPLATES = [
        {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
    ]
    client = get_redis()
    client.set("user:1", "s3cret-value")
    cache = client.client_cache  # type: ignore[union-attr]
    hits = cache.hits
    deadline = time.monotonic() + 10
    while cache.hits == hits and time.monotonic() < deadline:  # kept once it listens
        client.get("user:1")
    panel = RedisPanel.__new__(RedisPanel)  # what the toolbar calls around a request
    panel.enable_instrumentation()
    try:
        assert client.get("user:1") == b"s3cret-value"
    finally:
        panel.disable_instrumentation()
    client.get("user:1")  # after the request: not the panel's
    stats = panel_stats(RequestStats(), local_reads=panel._local_reads)
    assert stats["local_reads"] == [{"connection": "default", "command": "GET user:1"}]
    html = render_to_string("redis_conn/debug_toolbar/panel.html", {**stats, "middleware": True})
    assert "Reads answered from the client cache" in html and "GET user:1" in html
    assert "s3cret" not in html


def connections_env(redis_server: Any, redis_server_b: Any) -> dict[str, str]:
    connections = {"default": {"URL": redis_server.url}, "messages": {"URL": redis_server_b.url}}
    return {
        "REDIS_CONN_TEST_CONNECTIONS": json.dumps(connections),
        "DJANGO_SETTINGS_MODULE": "tests.test_django.toolbar_settings",
    }


def toolbar_root(driver: Any) -> Any:
    """Where the toolbar's elements are: its shadow root (toolbar 7+), else the page."""
    host = WebDriverWait(driver, 20).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#djDebugRoot, #djDebug")
    )
    has_shadow = driver.execute_script("return arguments[0].shadowRoot !== null", host)
    return host.shadow_root if has_shadow else driver


def shown(element: Any) -> Any:
    return element if element.is_displayed() else False


def test_the_panel_and_the_header_in_a_real_browser(
    redis_server: Any, redis_server_b: Any, tmp_path: Path
) -> None:
    port = free_port()
    command = ["-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"]
    env = connections_env(redis_server, redis_server_b)
    with web_server(command, port, env, tmp_path / "runserver.log") as base, chromium() as driver:
        driver.get(f"{base}/dashboard/")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Dashboard"
        # The toolbar adds timings of its own (its timer panel): ours is the one named redis.
        (timing,) = [t for t in server_timing(driver) if t["name"] == "redis"]
        assert timing["description"] == "4 commands, 3 round trips"
        assert timing["duration"] > 0
        wait = WebDriverWait(driver, 20)
        toolbar = toolbar_root(driver)
        button = wait.until(
            lambda _: shown(toolbar.find_element(By.CSS_SELECTOR, "#djdt-RedisPanel a"))
        )
        assert button.text.split("\n") == ["Redis", "4 commands in 3 round trips"]
        button.click()
        panel = wait.until(lambda _: shown(toolbar.find_element(By.CSS_SELECTOR, "#RedisPanel")))
        wait.until(lambda _: len(panel.find_elements(By.CSS_SELECTOR, "table")) == 3)
        screenshot = tmp_path / "debug-toolbar-redis-panel.png"
        assert driver.save_screenshot(str(screenshot))
        text = panel.text
        tables = [
            [
                [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
                for row in table.find_elements(By.CSS_SELECTOR, "tr")
            ]
            for table in panel.find_elements(By.CSS_SELECTOR, "table")
        ]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("REDIS_CONN_UPDATE_SCREENSHOTS"):
        shutil.copy(screenshot, DOCS_STATIC / screenshot.name)
    assert "s3cret" not in text  # values are never shown
    summary, by_connection, commands = tables
    assert [h.upper() for h in summary[0]] == [
        "COMMANDS", "ROUND TRIPS", "ROUND TRIPS SAVED", "TIME"
    ]  # fmt: skip
    assert summary[1][:3] == ["4", "3", "1"]
    assert by_connection[1:] == [["default", "3", "2"], ["messages", "1", "1"]]
    assert commands[1:] == [
        ["#1", "default", "SET greeting", "ok"],
        ["", "", "INCRBY page:views", "ok"],
        ["#2", "default", "INCRBY page:views", "ok"],
        ["", "messages", "LPUSH audit:log", "ok"],
    ]


def test_the_header_under_asgi_in_a_real_browser(
    redis_server: Any, redis_server_b: Any, tmp_path: Path
) -> None:
    port = free_port()
    command = ["-m", "uvicorn", "tests.test_django.asgi:application", "--port", str(port)]
    env = connections_env(redis_server, redis_server_b)
    with web_server(command, port, env, tmp_path / "uvicorn.log") as base, chromium() as driver:
        driver.get(f"{base}/async/dashboard/")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Async dashboard"
        (timing,) = [t for t in server_timing(driver) if t["name"] == "redis"]
    assert (timing["name"], timing["description"]) == ("redis", "2 commands, 2 round trips")
