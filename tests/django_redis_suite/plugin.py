"""The pytest plugin that stands in for django-redis's ``tests/conftest.py``.

django-redis's conftest needs pytest-xdist and picks a settings module per test; here one
process runs one configuration (DJANGO_REDIS_SUITE_CONFIG, see :mod:`settings`), with the same
fixtures (``cache``, ``settings``, ``session`` through ``cache``) and test ids
(``test_x[sqlite_json]``). The tests listed in :data:`EXCLUDED` are deselected, each for the
reason given (docs/migrating.md lists them); every outcome is written to
DJANGO_REDIS_SUITE_RESULTS as JSON lines for the pytest test that started the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

_PRIVATE = "inspects django-redis's private client attributes"
_PATCHES = "patches django_redis.cache.RedisCache (django-redis's class, not this backend)"
_OWN_CLIENT = "tests django-redis's own client classes, built with mocks, not a cache backend"

#: Tests that look inside django-redis rather than at what a cache does, by file::name.
EXCLUDED = {
    "test_backend.py::TestDjangoRedisCache::test_save_dict": f"{_PRIVATE} (_serializer)",
    "test_backend.py::TestDjangoRedisCache::test_intenum": f"{_PRIVATE} (_serializer)",
    "test_backend.py::TestDjangoRedisCache::test_set_call_empty_pipeline": (
        f"{_PRIVATE} (_backend) and the exact arguments of its SET"
    ),
    "test_backend.py::TestDjangoRedisCache::test_sscan_with_match": (
        f"{_PRIVATE} (_has_compression_enabled)"
    ),
    "test_backend.py::TestDjangoRedisCache::test_sscan_iter_with_match": (
        f"{_PRIVATE} (_has_compression_enabled)"
    ),
    "test_backend.py::TestDjangoRedisCache::test_primary_replica_switching": (
        f"{_PRIVATE} (_server, _clients: django-redis's list of servers)"
    ),
    "test_backend.py::TestDjangoRedisCache::test_primary_replica_switching_with_index": (
        f"{_PRIVATE} (_server, _clients: django-redis's list of servers)"
    ),
    "test_backend.py::TestDjangoRedisCache::test_delete_pattern_with_custom_count": _PATCHES,
    "test_backend.py::TestDjangoRedisCache::test_delete_pattern_with_settings_default_scan_count": (
        _PATCHES
    ),
    "test_backend.py::TestDjangoRedisCache::test_close_uninitialized_client": _PATCHES,
    "test_backend.py::TestDjangoRedisCache::test_close_with_signal_parameter": _PATCHES,
    "test_client.py::TestClientClose": f"{_PRIVATE} (_options, connection_factory)",
    "test_client.py::TestDefaultClient": _OWN_CLIENT,
    "test_client.py::TestShardClient": _OWN_CLIENT,
}


def excluded(nodeid: str) -> str | None:
    """The reason ``nodeid`` (``tests/test_backend.py::Class::test[param]``) is left out."""
    path = nodeid.split("[", 1)[0].removeprefix("tests/")
    for name, reason in EXCLUDED.items():
        if path == name or path.startswith(name + "::"):
            return reason
    return None


def pytest_configure(config: pytest.Config) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "django_redis_suite.settings"
    import django

    django.setup()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cache" in metafunc.fixturenames or "session" in metafunc.fixturenames:
        metafunc.parametrize("cache_settings", [os.environ["DJANGO_REDIS_SUITE_CONFIG"]])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselected = [item for item in items if excluded(item.nodeid)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not excluded(item.nodeid)]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        detail = "" if report.passed else str(report.longrepr)[-3000:]
        line = {"id": report.nodeid, "when": report.when, "outcome": report.outcome}
        with open(os.environ["DJANGO_REDIS_SUITE_RESULTS"], "a") as out:
            out.write(json.dumps({**line, "detail": detail}) + "\n")


@pytest.fixture
def settings() -> Iterator[Any]:
    """django-redis's fixture: settings changed for one test, restored afterwards."""
    from tests.settings_wrapper import SettingsWrapper

    wrapper = SettingsWrapper()
    yield wrapper
    wrapper.finalize()


@pytest.fixture
def cache(cache_settings: str) -> Iterator[Any]:
    from django.core.cache import cache as default_cache

    import redis_conn

    yield default_cache
    default_cache.clear()
    # django-redis's clear() is FLUSHDB, and its tests rely on it to start each test on an
    # empty database; this backend's clear() deletes only the keys of the cache's own prefix
    # (docs/cache.md), which leaves the keys of a test that changed KEY_PREFIX.
    redis_conn.get_redis("default").flushdb()


class _Mocker:
    """pytest-mock's ``mocker.patch.object``, the one use django-redis's tests make of it."""

    def __init__(self) -> None:
        self._patches: list[Any] = []
        self.patch = self

    def object(self, target: Any, attribute: str, *args: Any, **kwargs: Any) -> Any:
        patcher = mock.patch.object(target, attribute, *args, **kwargs)
        self._patches.append(patcher)
        return patcher.start()

    def stop_all(self) -> None:
        for patcher in reversed(self._patches):
            patcher.stop()


try:
    import pytest_mock  # noqa: F401  # the real fixture, when installed
except ImportError:

    @pytest.fixture
    def mocker() -> Iterator[_Mocker]:
        patches = _Mocker()
        yield patches
        patches.stop_all()
