from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from servers import (
        ClusterDeployment,
        RedisServer,
        SentinelDeployment,
        StandaloneFlush,
        flush_session_servers,
        make_tls_material,
        register_session,
        unregister_session,
    )
except ModuleNotFoundError as exc:  # tests/ became a package: import it by its package name
    if exc.name != "servers":
        raise
    from tests.servers import (
        ClusterDeployment,
        RedisServer,
        SentinelDeployment,
        StandaloneFlush,
        flush_session_servers,
        make_tls_material,
        register_session,
        unregister_session,
    )

# =============================================================================
# Real-server harness fixtures (see tests/README.md and tests/servers.py).
# Session servers start lazily, on first use, and are stopped at session end.
# Keep other fixtures outside this block.
# =============================================================================


def _standalone(key: str, server: RedisServer) -> Iterator[RedisServer]:
    server.start()  # raises HarnessError naming the server, with its log tail
    register_session(key, StandaloneFlush(server))
    try:
        yield server
    finally:
        unregister_session(key)
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Standalone server A, on TCP and on a unix socket (.unix_socket, .unix_url)."""
    base = tmp_path_factory.mktemp("redis_server")
    yield from _standalone("redis_server", RedisServer("redis_server", base, unix_socket=True))


@pytest.fixture(scope="session")
def redis_server_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Standalone server B, with ACL user app/app-s3cret-pw (.acl_url); default user open."""
    base = tmp_path_factory.mktemp("redis_server_b")
    server = RedisServer("redis_server_b", base, acl=("app", "app-s3cret-pw"))
    yield from _standalone("redis_server_b", server)


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """TLS-only server: .url is rediss://127.0.0.1:P/0, .ca_cert the CA to trust."""
    base = tmp_path_factory.mktemp("tls_server")
    tls = make_tls_material(base / "tls")
    yield from _standalone("tls_server", RedisServer("tls_server", base, tls=tls))


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterDeployment]:
    """3 primaries + 3 replicas: .url, .nodes, .primaries/.replicas (ports), .stop()."""
    cluster = ClusterDeployment(tmp_path_factory.mktemp("redis_cluster"))
    cluster.start()
    register_session("redis_cluster", cluster)
    try:
        yield cluster
    finally:
        unregister_session("redis_cluster")
        cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelDeployment]:
    """Primary + replica + one sentinel: .sentinels, .service_name, .primary, .replica,
    .sentinel."""
    deployment = SentinelDeployment(tmp_path_factory.mktemp("redis_sentinel"))
    deployment.start()
    register_session("redis_sentinel", deployment)
    try:
        yield deployment
    finally:
        unregister_session("redis_sentinel")
        deployment.stop()


@pytest.fixture
def private_sentinel(tmp_path: Path) -> Iterator[SentinelDeployment]:
    """A Sentinel deployment of this test only: its primary is killed."""
    deployment = SentinelDeployment(tmp_path / "sentinel")
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
def killable_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh standalone server for one test, which may kill()/restart()/pause() it."""
    server = RedisServer("killable", tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def flush_servers() -> None:
    """FLUSHALL the session servers started so far (cluster: every primary; sentinel:
    the primary the sentinel reports now). Dead/paused session processes are revived."""
    flush_session_servers()


# ============================ end of harness block ============================


# -- failure reports that print on every interpreter ---------------------------------------


def _collection_paused() -> Generator[None, Any, Any]:
    """Run a reporting hook with the cycle collector paused.

    CPython 3.11.0-3.11.7 and 3.12.0-3.12.1 keep one AST recursion counter per interpreter
    (python/cpython#106905, fixed by #113035 in 3.11.8 and 3.12.2). When a collection runs
    in the middle of ``ast.parse`` and a finalizer it calls parses source too (3.11's
    ``traceback`` parses each line it underlines, e.g. for an asyncio "Task exception was
    never retrieved" or an unraisable ResourceWarning), the outer parse raises
    ``SystemError: AST constructor recursion depth mismatch``. Pytest parses the test's
    file to show a failure, so the run ended in INTERNALERROR with no failure summary.
    With no collection while the report is built, no finalizer can run inside that parse.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return (yield)
    finally:
        if paused:
            gc.enable()


pytest_runtest_makereport = pytest.hookimpl(wrapper=True, tryfirst=True)(_collection_paused)
pytest_make_collect_report = pytest.hookimpl(wrapper=True, tryfirst=True)(_collection_paused)
pytest_terminal_summary = pytest.hookimpl(wrapper=True, tryfirst=True)(_collection_paused)


# -- pinning a leak on the test that makes it --------------------------------------------------


@pytest.fixture(autouse=True)
def collect_after_each_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """With REDIS_CONN_GC_EACH_TEST=1, collect cycles after every test and fail the test
    whose garbage raises a ResourceWarning (an unclosed socket or asyncio transport).

    Without it, such garbage is collected during some later test, which then fails for a
    leak it did not make (the suite runs with filterwarnings = error).
    """
    yield
    if not os.environ.get("REDIS_CONN_GC_EACH_TEST"):
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], f"{request.node.nodeid} left garbage that leaks: {leaks}"
