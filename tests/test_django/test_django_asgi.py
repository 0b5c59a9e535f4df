"""RedisLifespan under a real uvicorn: the connections are closed when the server shuts down.

tests/test_django/lifespan_server.py serves a sync and an async view on a fresh redis-server
and stays alive after uvicorn returns, so the server's CLIENT LIST shows what the shutdown
closed. Without the wrapper (``bare``), Django's handler refuses the lifespan protocol and the
sockets stay open until the process ends.
"""

from __future__ import annotations

import asyncio
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import wait_until

from redis_conn import ConnectionRegistry
from redis_conn.django.asgi import RedisLifespan

SERVER = Path(__file__).with_name("lifespan_server.py")


class Driver:
    """The lifespan_server.py process; its output lines arrive on a queue."""

    def __init__(self, redis_url: str, mode: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), redis_url, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line {prefix!r} in time; output: {self.seen}") from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def get(self, port: int, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            assert response.status == 200
            return str(response.read().decode())

    def stop(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()  # the server process exits when its stdin closes
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


@pytest.fixture
def driver(killable_server: Any) -> Iterator[Callable[[str], Driver]]:
    started: list[Driver] = []

    def start(mode: str) -> Driver:
        started.append(Driver(killable_server.url, mode))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def others(server: Any) -> int:
    """Connections on the server other than the one asking."""
    return len(server.client_list()) - 1


def serve_and_stop(start: Callable[[str], Driver], mode: str, server: Any) -> Driver:
    app = start(mode)
    port = int(app.wait_for("PORT ").split()[1])
    app.wait_for("INFO:     Application startup complete.")
    assert [app.get(port, "/sync/"), app.get(port, "/async/")] == ["1", "1"]
    assert [app.get(port, "/sync/"), app.get(port, "/async/")] == ["2", "2"]
    assert others(server) == 2  # one pooled connection of each client
    app.process.send_signal(signal.SIGTERM)  # a graceful shutdown, as from an orchestrator
    app.wait_for("SERVER-STOPPED")
    return app


def test_the_lifespan_shutdown_closes_sync_and_async_connections(
    driver: Callable[[str], Driver], killable_server: Any
) -> None:
    server = killable_server.client(decode_responses=True)
    try:
        app = serve_and_stop(driver, "wrapped", server)
        assert "INFO:     Application shutdown complete." in app.seen
        # The process is alive; its sockets are closed (the server notices at once).
        wait_until(
            lambda: others(server) == 0, 5, lambda: f"sockets closed: {server.client_list()}"
        )
    finally:
        server.close()


def test_without_the_wrapper_the_sockets_outlive_the_shutdown(
    driver: Callable[[str], Driver], killable_server: Any
) -> None:
    server = killable_server.client(decode_responses=True)
    try:
        app = serve_and_stop(driver, "bare", server)
        assert "INFO:     ASGI 'lifespan' protocol appears unsupported." in app.seen
        # The asyncio client's socket closes with the loop (the registry closes a loop's
        # clients when it shuts down); the sync pool's outlives the server's shutdown.
        assert others(server) == 1
    finally:
        server.close()


def test_other_scopes_pass_through_and_a_failed_close_is_reported() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    class Broken(ConnectionRegistry):
        def close_all(self) -> None:
            raise RuntimeError("cannot close")

    async def main() -> list[Any]:
        wrapper = RedisLifespan(app, registry=Broken({"default": {"FAKE": True}}))
        await wrapper({"type": "http"}, None, None)  # type: ignore[arg-type]
        incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        sent: list[Any] = []

        async def receive() -> Any:
            return next(incoming)

        async def send(message: Any) -> None:
            sent.append(message)

        await wrapper({"type": "lifespan"}, receive, send)
        return sent

    assert asyncio.run(main()) == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.failed", "message": "RuntimeError('cannot close')"},
    ]
    assert seen == ["http"]
