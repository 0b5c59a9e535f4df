"""Django's own cache test suite against redis_conn's backend, on a real redis-server.

Django's ``runtests.py``, from the sdist of the installed Django version (fetched once by
``tests/redis_conn_cache_suite/fetch.py``), runs in a subprocess: Django's ``RedisCacheTests``
beside ``BaseCacheTests`` on our backend (sync methods, and the async methods behind a sync
facade) and the session tests. Its runner writes every outcome to a JSON file read here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.redis_conn_cache_suite.fetch import django_tests_dir

SUITE = Path(__file__).resolve().parents[1] / "redis_conn_cache_suite"
DJANGO = "cache.tests.RedisCacheTests"
OURS = "redis_conn_cache_suite.tests.RedisConnCacheTests"
OURS_ASYNC = "redis_conn_cache_suite.tests.RedisConnAsyncPathCacheTests"
SESSIONS = "redis_conn_cache_suite.tests.SessionsOnRedisConnCacheTests"
CACHED = "redis_conn_cache_suite.tests.RedisConnClientCacheTests"
ASYNC_CACHED = "redis_conn_cache_suite.tests.RedisConnAsyncClientCacheTests"


@pytest.fixture(scope="module")
def suite(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tests_dir = django_tests_dir()
    link = tests_dir / "redis_conn_cache_suite"
    if not link.is_symlink() or link.resolve() != SUITE:
        link.unlink(missing_ok=True)
        link.symlink_to(SUITE, target_is_directory=True)
    results = tmp_path_factory.mktemp("django_cache_suite") / "results.json"
    env = {
        **os.environ,
        "REDIS_CONN_SUITE_URL": f"redis://{redis_server.host}:{redis_server.port}",
        "REDIS_CONN_SUITE_RESULTS": str(results),
    }
    run = subprocess.run(
        [
            sys.executable,
            "runtests.py",
            "--settings=redis_conn_cache_suite.settings",
            "--parallel=1",
            "--noinput",
            DJANGO,
            "redis_conn_cache_suite",
        ],
        cwd=tests_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert results.exists(), f"runtests.py wrote no results:\n{run.stdout}\n{run.stderr[-5000:]}"
    data: dict[str, Any] = json.loads(results.read_text())
    data["returncode"], data["output"] = run.returncode, run.stderr[-5000:]
    return data


def outcomes(suite: dict[str, Any], cls: str) -> dict[str, tuple[str, str]]:
    prefix = cls + "."
    return {
        o["id"][len(prefix) :]: (o["outcome"], o["detail"])
        for o in suite["outcomes"]
        if o["id"].startswith(prefix)
    }


def test_the_run_succeeds(suite: dict[str, Any]) -> None:
    failed = [o for o in suite["outcomes"] if o["outcome"] not in ("passed", "skipped")]
    assert failed == [], suite["output"]
    assert suite["returncode"] == 0, suite["output"]


def test_django_own_redis_tests_ran_on_the_same_server(suite: dict[str, Any]) -> None:
    django = outcomes(suite, DJANGO)
    assert set(suite["base_tests"]) <= set(django)
    assert {outcome for outcome, _ in django.values()} == {"passed", "skipped"}


@pytest.mark.parametrize("cls", [OURS, OURS_ASYNC, CACHED, ASYNC_CACHED])
def test_every_base_cache_test_ran_on_our_backend(suite: dict[str, Any], cls: str) -> None:
    ours = outcomes(suite, cls)
    missing = set(suite["base_tests"]) - set(ours)
    assert missing == set()
    assert len(suite["base_tests"]) >= 50  # the whole of BaseCacheTests (54 in Django 5.2)


@pytest.mark.parametrize("cls", [OURS, OURS_ASYNC, CACHED, ASYNC_CACHED])
def test_nothing_skipped_that_django_does_not_skip(suite: dict[str, Any], cls: str) -> None:
    django_skips = {t: d for t, (o, d) in outcomes(suite, DJANGO).items() if o == "skipped"}
    our_skips = {t: d for t, (o, d) in outcomes(suite, cls).items() if o == "skipped"}
    # The same tests for the same reason: Redis has no culling (MAX_ENTRIES) to test.
    assert our_skips == django_skips
    assert set(our_skips) == {"test_cull", "test_zero_cull", "test_cull_delete_when_store_empty"}


def test_sessions_log_in_out_and_expire_through_the_cache(suite: dict[str, Any]) -> None:
    assert outcomes(suite, SESSIONS) == {
        "test_login_and_logout": ("passed", ""),
        "test_session_expires_in_redis": ("passed", ""),
    }
