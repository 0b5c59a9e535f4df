"""redis_conn.testing: the swap to fake servers, the pytest fixture and the Django helpers.

Real servers are configured first everywhere, so "nothing reached the real server" is checked
against a server that would have answered. The pytest plugin and the examples of
docs/testing.md run in pytester sessions of their own (a subprocess each).
"""

from __future__ import annotations

import asyncio
import io
import re
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

import redis_conn
from redis_conn import ConfigurationError, ConnectionRegistry
from redis_conn.django.apps import install, load_settings
from redis_conn.pipeline import pipeline
from redis_conn.registry import connections
from redis_conn.testing import FakeConnections, fake_connections, fake_settings
from redis_conn.testing.django import FakeRedisMixin, use_fake_redis

pytest_plugins = ["pytester"]

DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
PLUGIN = ("-p", "no:redis_conn", "-p", "redis_conn.testing.pytest_plugin")


# -- fixtures ------------------------------------------------------------------------------


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
def registry(redis_server: Any, redis_server_b: Any) -> Iterator[ConnectionRegistry]:
    """A registry of its own on the two real servers, with an alias and reply options."""
    registry = ConnectionRegistry(
        {
            "default": {"URL": redis_server.url, "OPTIONS": {"decode_responses": True}},
            "sessions": {"ALIAS": "default"},
            "other": {"URL": redis_server_b.url, "OPTIONS": {"client_name": "other"}},
            "again": {"ALIAS": "sessions"},
        }
    )
    yield registry
    registry.close_all()


@pytest.fixture
def django_registry(settings: Any, redis_server: Any, redis_server_b: Any) -> Iterator[None]:
    """The process-wide registry following Django settings that name the real servers."""
    install()
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": redis_server.url},
        "sessions": {"ALIAS": "default"},
        "other": {"URL": redis_server_b.url},
    }
    yield
    install()


# -- fake_settings -----------------------------------------------------------------------------


def test_fake_settings_keep_names_aliases_and_reply_options() -> None:
    settings = {
        "default": {"URL": "redis://:pw@10.0.0.1:6390/0", "OPTIONS": {"decode_responses": True}},
        "cache": {"URL": "redis://10.0.0.2:7000", "CLUSTER": True, "READ_FROM_REPLICAS": True},
        "ha": {"SENTINELS": [("10.0.0.3", 26390)], "SERVICE_NAME": "mymaster"},
        "sock": {
            "URL": "unix:///run/redis.sock",
            "OPTIONS": {"protocol": 3, "client_name": "app"},
        },
        "sessions": {"ALIAS": "default"},
        "chained": {"ALIAS": "sessions"},
        "dev": {"FAKE": True},
    }
    assert fake_settings(settings) == {
        "default": {"FAKE": True, "OPTIONS": {"decode_responses": True}},
        "cache": {"FAKE": True},
        "ha": {"FAKE": True},
        "sock": {"FAKE": True, "OPTIONS": {"protocol": 3}},
        "sessions": {"ALIAS": "default"},
        "chained": {"ALIAS": "default"},
        "dev": {"FAKE": True},
    }


def test_fake_settings_of_nothing_is_the_embedded_default() -> None:
    assert fake_settings(None) == {"default": {"FAKE": True}}


def test_fake_settings_reject_invalid_settings() -> None:
    with pytest.raises(ConfigurationError) as caught:
        fake_settings({"sessions": {"ALIAS": "nope"}})
    assert str(caught.value) == (
        "Redis connection 'sessions' has ALIAS 'nope', which is not a configured connection. "
        "HINT: Configured connections: none."
    )


# -- the swap ----------------------------------------------------------------------------------


def test_swap_keeps_names_and_aliases_share(registry: ConnectionRegistry) -> None:
    with fake_connections(registry) as fake:
        assert fake.names() == ["default", "sessions", "other", "again"]
        assert {registry.spec(n).kind for n in fake.names()} == {"fake"}
        assert registry.get("sessions") is registry.get("default")
        assert registry.get("again") is registry.get("default")
        assert registry.get("other") is not registry.get("default")
        registry.get("sessions").set("k", "v")
        assert registry.get("default").get("k") == "v"  # decode_responses kept
        assert registry.get("other").get("k") is None  # another fake server


def test_nothing_reaches_the_real_servers(
    registry: ConnectionRegistry, real_a: Any, real_b: Any
) -> None:
    registry.get("default").ping()  # a real pool exists before the swap
    with fake_connections(registry):
        registry.get("default").set("k", "fake")
        registry.get("other").rpush("list", "fake")
        registry.get("again").incr("hits")
    assert real_a.dbsize() == 0
    assert real_b.dbsize() == 0


def test_original_settings_are_restored(registry: ConnectionRegistry, real_a: Any) -> None:
    with fake_connections(registry):
        registry.get().set("k", "fake")
    assert registry.spec("default").kind == "standalone"
    assert registry.get("sessions") is registry.get("default")
    registry.get("sessions").set("k", "real")
    assert real_a.get("k") == "real"


def test_each_swap_starts_empty(registry: ConnectionRegistry) -> None:
    with fake_connections(registry):
        registry.get().set("k", "first")
    with fake_connections(registry):
        assert registry.get().get("k") is None


def test_flush_empties_every_fake_server(registry: ConnectionRegistry) -> None:
    with fake_connections(registry) as fake:
        registry.get("sessions").set("a", 1)
        registry.get("other").set("b", 2)
        fake.flush()
        assert registry.get("default").dbsize() == 0
        assert registry.get("other").dbsize() == 0
        assert fake.get("again") is registry.get("default")


def test_use_outside_the_swap_is_refused(registry: ConnectionRegistry) -> None:
    swap = fake_connections(registry)
    with pytest.raises(RuntimeError) as caught:
        swap.flush()
    assert str(caught.value) == (
        "FakeConnections.flush() was called while the swap is not active; call it inside "
        "the 'with fake_connections()' block (or after start())."
    )
    with swap, pytest.raises(RuntimeError) as again:
        swap.start()
    assert str(again.value) == (
        "This FakeConnections is already started; stop() it first, or make another."
    )
    swap.stop()  # a second stop does nothing
    assert not swap.active


def test_pipelines_use_the_fakes(redis_server: Any, real_a: Any) -> None:
    registry = ConnectionRegistry({"default": {"URL": redis_server.url}})
    try:
        with fake_connections(registry) as fake:
            from redis_conn.request_scope import RequestPipeline

            scope = RequestPipeline(registry)
            scope.pipeline.incr("hits")
            scope.flush()
            assert fake.get().get("hits") == b"1"
    finally:
        registry.close_all()
    assert real_a.exists("hits") == 0


def test_async_clients_share_the_fake_servers(registry: ConnectionRegistry, real_a: Any) -> None:
    async def write_and_read() -> Any:
        try:
            await registry.get_async("sessions").set("k", "from async")
            return await registry.get_async("default").get("k")
        finally:
            await registry.aclose_async()

    async def read() -> Any:
        try:
            return await registry.get_async("default").get("k")
        finally:
            await registry.aclose_async()

    with fake_connections(registry) as fake:
        assert asyncio.run(write_and_read()) == "from async"
        assert fake.get().get("k") == "from async"  # the sync client sees the same server
        fake.flush()
        assert asyncio.run(read()) is None
    assert real_a.dbsize() == 0


def test_invalid_settings_fail_on_first_use_inside_the_swap() -> None:
    registry = ConnectionRegistry()
    registry.use_settings(lambda: {"default": {"URL": "http://example.com"}})
    with fake_connections(registry), pytest.raises(ConfigurationError) as caught:
        registry.get()
    assert str(caught.value) == (
        "Redis connection 'default' has URL 'http://example.com' with scheme 'http'. "
        "HINT: Use redis://, rediss:// (TLS) or unix://."
    )


# -- Django: the process-wide registry follows the settings -------------------------------------


@pytest.mark.usefixtures("django_registry")
def test_django_settings_are_faked_and_restored(real_a: Any, real_b: Any) -> None:
    with fake_connections() as fake:
        assert fake.registry is connections
        redis_conn.get_redis("sessions").set("k", "fake")
        with pipeline(name="other") as p:
            p.set("p", "fake")
            p.execute()
        assert redis_conn.get_redis().get("k") == b"fake"
    assert real_a.dbsize() == 0 and real_b.dbsize() == 0
    assert connections._loader is load_settings  # Django's loader again
    redis_conn.get_redis("sessions").set("k", "real")
    assert real_a.get("k") == "real"


@pytest.mark.usefixtures("django_registry")
def test_override_settings_during_the_swap_is_faked(redis_server: Any, real_a: Any) -> None:
    changed = {"default": {"URL": redis_server.url}, "reports": {"URL": redis_server.url}}
    with fake_connections():
        with override_settings(REDIS_CONNECTIONS=changed):
            assert connections.names() == ["default", "reports"]
            assert connections.spec("reports").kind == "fake"
            redis_conn.get_redis("reports").set("r", "fake")
        assert connections.names() == ["default", "sessions", "other"]
        assert connections.spec("default").kind == "fake"
    assert real_a.dbsize() == 0
    assert connections.spec("default").kind == "standalone"


# -- Django TestCase helpers ----------------------------------------------------------------------


def run_test_case(case: type[unittest.TestCase]) -> unittest.TestResult:
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
    assert result.testsRun > 0
    return result


def problems(result: unittest.TestResult) -> list[str]:
    return [text for _, text in result.errors + result.failures]


@pytest.mark.usefixtures("django_registry")
def test_django_helpers_swap_each_test(real_a: Any) -> None:
    seen: list[FakeConnections] = []

    class WithMixin(FakeRedisMixin, unittest.TestCase):
        def test_one(self) -> None:
            seen.append(self.fake_redis)
            redis_conn.get_redis("sessions").set("k", "fake")
            self.assertEqual(self.fake_redis.get().get("k"), b"fake")

        def test_two(self) -> None:
            seen.append(self.fake_redis)
            self.assertEqual(redis_conn.get_redis().dbsize(), 0)

    @use_fake_redis()
    class Decorated(unittest.TestCase):
        fake_redis: FakeConnections

        def test_one(self) -> None:
            seen.append(self.fake_redis)
            redis_conn.get_redis("other").set("k", "fake")

        def test_two(self) -> None:
            seen.append(self.fake_redis)
            self.assertEqual(redis_conn.get_redis("other").dbsize(), 0)

    class Partly(unittest.TestCase):
        @use_fake_redis()
        def test_method(self) -> None:
            self.assertEqual(connections.spec("default").kind, "fake")

        def test_block(self) -> None:
            with use_fake_redis() as fake:
                self.assertIs(fake.registry, connections)
                self.assertEqual(connections.spec("other").kind, "fake")
            self.assertEqual(connections.spec("other").kind, "standalone")

        def test_not_decorated(self) -> None:
            self.assertEqual(connections.spec("default").kind, "standalone")

    for case in (WithMixin, Decorated, Partly):
        assert problems(run_test_case(case)) == []
    assert len(seen) == 4 and len({id(s) for s in seen}) == 4
    assert not any(s.active for s in seen)
    assert real_a.dbsize() == 0
    assert connections.spec("default").kind == "standalone"


# -- the pytest plugin ---------------------------------------------------------------------------

PLAIN_TESTS = """
import redis
import redis_conn

REAL = {real!r}


def test_writes(redis_conn_fake):
    redis_conn.get_redis("sessions").set("k", "1")
    assert redis_conn_fake.get().get("k") == b"1"
    assert redis_conn.get_redis("sessions") is redis_conn.get_redis("default")
    assert redis_conn.connections.spec("default").kind == "fake"


def test_next_test_starts_empty(redis_conn_fake):
    assert redis_conn.get_redis().get("k") is None
    redis_conn.get_redis().set("k", "2")


def test_without_the_fixture_nothing_is_swapped():
    assert redis_conn.connections.spec("default").kind == "standalone"
    real = redis.Redis.from_url(REAL)
    try:
        assert real.exists("k") == 0
    finally:
        real.close()
"""

PLAIN_CONFTEST = """
import redis_conn

redis_conn.connections.configure(
    {{"default": {{"URL": {real!r}}}, "sessions": {{"ALIAS": "default"}}}}
)
"""


def test_plugin_fixture_swaps_per_test_and_is_opt_in(
    pytester: pytest.Pytester, redis_server: Any, real_a: Any
) -> None:
    pytester.makeconftest(PLAIN_CONFTEST.format(real=redis_server.url))
    pytester.makepyfile(test_plain=PLAIN_TESTS.format(real=redis_server.url))
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:django", "-W", "error")
    result.assert_outcomes(passed=3)
    assert real_a.dbsize() == 0


def test_plugin_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:django", "--fixtures")
    result.stdout.fnmatch_lines(
        [
            "redis_conn_registry -- *pytest_plugin.py:*",
            "*The registry ``redis_conn_fake`` swaps*",
            "redis_conn_fake -- *pytest_plugin.py:*",
            "*Every Redis connection swapped for an empty fake server for this test.",
        ]
    )


# -- the examples of docs/testing.md, run where they belong ----------------------------------------

EXAMPLE_FILE = re.compile(r"```python\n# (?P<name>[\w.]+\.py)\n(?P<code>.*?)```", re.DOTALL)

DJANGO_SETTINGS = """
SECRET_KEY = "docs-example"
USE_TZ = True
INSTALLED_APPS = ["redis_conn.django"]
MIDDLEWARE = ["redis_conn.django.middleware.RequestPipelineMiddleware"]
ROOT_URLCONF = "urls"
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
REDIS_CONNECTIONS = {{
    "default": {{"URL": {a!r}}},
    "activity": {{"URL": {b!r}}},
    "sessions": {{"ALIAS": "default"}},
}}
"""
DJANGO_URLS = """
from django.urls import path

import views

urlpatterns = [path("", views.home)]
"""
DJANGO_CONTROL = """
import redis_conn


def test_zz_the_real_servers_are_back():
    assert redis_conn.connections.spec("default").kind == "standalone"
    redis_conn.get_redis().set("control", "real")   # reaches server A
"""
INI = "[pytest]\npythonpath = .\nfilterwarnings = error\n"
DJANGO_INI = INI + "django_find_project = false\n"


def documented_files() -> dict[str, list[str]]:
    """``{"test_views.py": [code, ...]}``: the page's examples that begin with a file name."""
    found: dict[str, list[str]] = {}
    for match in EXAMPLE_FILE.finditer(DOCS_PAGE.read_text(encoding="utf-8")):
        found.setdefault(match["name"], []).append(match["code"])
    return found


def on_test_servers(code: str, a: Any, b: Any) -> str:
    code = code.replace("127.0.0.1:6379", f"{a.host}:{a.port}")
    code = code.replace("127.0.0.1:6380", f"{b.host}:{b.port}")
    assert "6379" not in code
    return code


def test_docs_examples_cover_the_plugin_django_and_flask() -> None:
    assert sorted((name, len(codes)) for name, codes in documented_files().items()) == [
        ("conftest.py", 2),
        ("test_flask_app.py", 1),
        ("test_testcase.py", 1),
        ("test_views.py", 1),
        ("views.py", 1),
    ]


def test_docs_pytest_django_and_testcase_examples(
    pytester: pytest.Pytester, redis_server: Any, redis_server_b: Any, real_a: Any, real_b: Any
) -> None:
    files = documented_files()
    pytester.makeini(DJANGO_INI)
    pytester.makepyfile(
        settings=DJANGO_SETTINGS.format(a=redis_server.url, b=redis_server_b.url),
        urls=DJANGO_URLS,
        views=files["views.py"][0],
        test_views=files["test_views.py"][0],
        test_testcase=files["test_testcase.py"][0],
        test_zz_control=DJANGO_CONTROL,
    )
    result = pytester.runpytest_subprocess(*PLUGIN, "--ds=settings", "-W", "error")
    result.assert_outcomes(passed=4 + 6 + 1)
    assert real_a.keys() == ["control"]  # only the test without the fixture got through
    assert real_b.dbsize() == 0


def test_docs_autouse_conftest_example(pytester: pytest.Pytester) -> None:
    autouse = documented_files()["conftest.py"][0]
    pytester.makeconftest(autouse)
    pytester.makepyfile(
        test_auto="""
        import redis_conn

        def test_faked_without_asking():
            assert redis_conn.connections.spec("default").kind == "fake"
            redis_conn.get_redis().set("k", "v")
        """
    )
    pytester.makeini(INI)
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:django")
    result.assert_outcomes(passed=1)


def test_docs_flask_example(
    pytester: pytest.Pytester, redis_server: Any, redis_server_b: Any, real_a: Any
) -> None:
    files = documented_files()
    pytester.makeini(INI)
    pytester.makeconftest(on_test_servers(files["conftest.py"][1], redis_server, redis_server_b))
    pytester.makepyfile(
        test_flask_app=files["test_flask_app.py"][0],
        test_zz_control="""
        def test_the_app_is_real_without_the_fixture(app):
            assert app.test_client().get("/").status_code == 200
        """,
    )
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:django", "-W", "error")
    result.assert_outcomes(passed=2)
    assert real_a.keys() == ["hits"]  # from the control test only
    assert real_a.get("hits") == "1"
