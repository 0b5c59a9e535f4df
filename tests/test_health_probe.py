"""Health probes: one attempt on a connection of their own, whatever RETRY says.

A listener that accepts TCP connections and closes them at once stands for a server that
drops every connection; it counts the attempts. A paused redis-server (SIGSTOP) accepts
connections but never answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from servers import wait_until

from redis_conn import ConnectionRegistry
from redis_conn.health import exit_code


class DroppingListener:
    """Accepts every connection and closes it; counts them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            with self._lock:
                self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def dropping() -> Iterator[DroppingListener]:
    listener = DroppingListener()
    yield listener
    listener.close()


@pytest.fixture
def registry() -> Iterator[ConnectionRegistry]:
    reg = ConnectionRegistry({"default": {"FAKE": True}})
    yield reg
    reg.close_all()


def test_a_probe_is_one_attempt_although_commands_are_retried(
    registry: ConnectionRegistry, dropping: DroppingListener
) -> None:
    registry.configure({"flaky": {"URL": dropping.url, "RETRY": 1}})
    report = registry.health()
    entry = report["connections"][0]
    assert entry["status"] == "down" and exit_code(report) == 1
    assert entry["error"].startswith("ConnectionError: Redis connection 'flaky': ")
    assert dropping.accepted == 1
    # The same server through the connection's own client: RETRY reconnects.
    with pytest.raises(redis.ConnectionError):
        registry.get("flaky").ping()
    assert dropping.accepted > 2  # at least one more attempt (redis-py may nest them)


def test_a_server_that_does_not_answer_is_down_within_the_connect_timeout(
    registry: ConnectionRegistry, killable_server: Any
) -> None:
    registry.configure(
        {
            "stuck": {
                "URL": killable_server.url,
                "SOCKET_TIMEOUT": 60,
                "SOCKET_CONNECT_TIMEOUT": 0.3,
                "RETRY": 3,
            }
        }
    )
    killable_server.pause()
    try:
        started = time.monotonic()
        entry = registry.health()["connections"][0]
        took = time.monotonic() - started
    finally:
        killable_server.resume()
    assert entry["status"] == "down"
    assert entry["error"].startswith("TimeoutError: Redis connection 'stuck': Timeout")
    # Bounded by the 0.3 s connect timeout, not the 60 s SOCKET_TIMEOUT (a wide margin).
    assert took < 10
    assert registry.health()["connections"][0]["status"] == "ok"


def test_a_full_blocking_pool_is_degraded_at_once_not_after_pool_timeout(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {"busy": {"URL": redis_server.url, "MAX_CONNECTIONS": 1, "POOL_TIMEOUT": 60}}
    )
    pool = registry.get("busy").connection_pool
    held = pool.get_connection()
    try:
        entry = registry.health()["connections"][0]
    finally:
        pool.release(held)
    assert entry["status"] == "degraded"
    assert entry["error"] == "pool full: 1 of 1 in use"
    assert entry["ping_ms"] > 0 and entry["server"]["role"] == "master"
    assert entry["pool"]["created"] == 1  # the application's connection, not the probe's


def test_the_probe_connection_is_closed_after_the_report(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure(
        {"default": {"URL": redis_server.url, "OPTIONS": {"client_name": "probe-t"}}}
    )
    server = redis_server.client(decode_responses=True)

    def named() -> int:
        return [c["name"] for c in server.client_list()].count("probe-t")

    try:
        server.ping()
        entry = registry.health()["connections"][0]
        # The probe connected with the connection's OPTIONS (its name included)...
        assert entry["status"] == "ok" and entry["server"]["connected_clients"] >= 2
        # ...and hung up: the server drops it as soon as it reads the close.
        wait_until(
            lambda: named() == 0, 5, lambda: f"the probe's connection closed ({named()} left)"
        )
        registry.get().ping()
        assert named() == 1  # the pool's own connection
    finally:
        server.close()
