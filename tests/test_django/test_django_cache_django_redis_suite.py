"""django-redis's own test suite against redis_conn's backend, on a real redis-server.

The test modules of the installed django-redis version (from its sdist, fetched once by
``tests/django_redis_suite/fetch.py``) run under pytest in subprocesses, one per django-redis
settings file (pickle, JSON, msgpack; zlib, gzip, lz4, zstd; a unix socket), side by side on
databases of their own, with ``tests/django_redis_suite/plugin.py`` in place of django-redis's
conftest. Every test passes except those the plugin leaves out, each for a reason that
docs/migrating.md gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.django_redis_suite.fetch import django_redis_suite_dir
from tests.django_redis_suite.plugin import EXCLUDED
from tests.servers import free_port

HERE = Path(__file__).resolve().parents[1]
MODULES = [
    "test_backend.py",
    "test_backend_sorted_sets.py",
    "test_cache_options.py",
    "test_session.py",
    "test_client.py",
]
CONFIGS = [
    "sqlite",
    "sqlite_json",
    "sqlite_msgpack",
    "sqlite_zlib",
    "sqlite_gzip",
    "sqlite_lz4",
    "sqlite_zstd",
    "sqlite_usock",
]


@pytest.fixture(scope="module")
def suite(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = django_redis_suite_dir()
    out = tmp_path_factory.mktemp("django_redis_suite")
    base_env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "PYTHONPATH": os.pathsep.join([str(HERE), str(root / "tests")]),
        "DJANGO_REDIS_SUITE_URL": f"redis://{redis_server.host}:{redis_server.port}",
        "DJANGO_REDIS_SUITE_UNIX": str(redis_server.unix_socket),
        "DJANGO_REDIS_SUITE_DOWN_URL": f"redis://127.0.0.1:{free_port()}",
    }
    runs = {}
    # Side by side: the suite mostly sleeps (expiry tests), so the runs overlap well.
    for config in CONFIGS:
        env = {
            **base_env,
            "DJANGO_REDIS_SUITE_CONFIG": config,
            "DJANGO_REDIS_SUITE_RESULTS": str(out / f"{config}.jsonl"),
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(HERE / "django_redis_suite" / "pytest.ini"),
            "--rootdir",
            str(root),
            "-q",
            *(f"tests/{module}" for module in MODULES),
        ]
        log = open(out / f"{config}.log", "w")  # noqa: SIM115  # closed below
        runs[config] = (
            subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT),
            log,
        )
    results: dict[str, Any] = {}
    for config, (process, log) in runs.items():
        process.wait(timeout=900)
        log.close()
        path = out / f"{config}.jsonl"
        outcomes = [json.loads(line) for line in path.read_text().splitlines()]
        output = (out / f"{config}.log").read_text()
        results[config] = {"returncode": process.returncode, "outcomes": outcomes, "output": output}
    return results


@pytest.mark.parametrize("config", CONFIGS)
def test_every_test_passes_but_those_left_out(suite: dict[str, Any], config: str) -> None:
    run = suite[config]
    failed = [o for o in run["outcomes"] if o["outcome"] != "passed"]
    assert failed == [], run["output"][-5000:]
    assert run["returncode"] == 0, run["output"][-5000:]
    passed = {o["id"] for o in run["outcomes"] if o["when"] == "call"}
    # The whole of the five modules ran (django-redis 7.0.0: 170 tests outside EXCLUDED).
    assert len(passed) >= 150, run["output"][-2000:]
    assert all(id.endswith(f"[{config}]") for id in passed if "[" in id)


def test_what_is_left_out_is_named_with_its_reason_in_the_migration_guide() -> None:
    guide = (HERE.parent / "docs" / "migrating.md").read_text()
    for name, reason in EXCLUDED.items():
        assert f"`{name}`" in guide
        assert reason.split(" (")[0] in guide
