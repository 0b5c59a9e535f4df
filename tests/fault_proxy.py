"""A TCP proxy in front of a real redis-server that loses replies on purpose.

``proxy.lose_reply_to(b"INCR")`` arms it: the next request chunk that contains ``INCR`` is
forwarded to the server (which runs it), and the server's answer is swallowed and the client's
socket closed, exactly the fault "the connection dropped after the server ran the command".
``keep`` bytes of the answer may be let through first (a batch that broke off half-read).
``proxy.hold_reply_to(b"INCR", seconds)`` delays the answer instead (a slow server), and
``proxy.cut_request_after(b"SET", n)`` forwards only ``n`` bytes of the next request containing
``SET`` and hangs up (a connection lost while a big batch is being sent).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any


class FaultProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self._keep = 0
        self._hold = 0.0
        self._cut: tuple[bytes, int] | None = None
        self.replies_lost = 0
        self.connections = 0
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="fault-proxy").start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def lose_reply_to(self, marker: bytes, *, keep: int = 0) -> None:
        """Swallow the reply to the next request containing ``marker`` (after ``keep`` bytes)."""
        with self._lock:
            self._marker, self._keep, self._hold = marker, keep, 0.0

    def hold_reply_to(self, marker: bytes, seconds: float) -> None:
        """Deliver the reply to the next request containing ``marker`` ``seconds`` late."""
        with self._lock:
            self._marker, self._keep, self._hold = marker, 0, seconds

    def cut_request_after(self, marker: bytes, forwarded: int) -> None:
        """Forward ``forwarded`` bytes of the next request holding ``marker``, then hang up."""
        with self._lock:
            self._cut = (marker, forwarded)

    @property
    def armed(self) -> bool:
        return self._marker is not None

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in list(self._sockets):
            _hang_up(sock)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            self.connections += 1
            self._sockets += [client, server]
            doomed = threading.Event()
            for pump, ends in (
                (self._requests, (client, server)),
                (self._replies, (server, client)),
            ):
                threading.Thread(target=pump, args=(*ends, doomed), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, doomed: Any) -> None:
        budget: int | None = None
        try:
            while data := client.recv(1 << 16):
                with self._lock:
                    if self._cut is not None and self._cut[0] in data:
                        budget, self._cut = self._cut[1], None
                    if self._marker is not None and self._marker in data:
                        self._marker = None
                        doomed.keep, doomed.hold = self._keep, self._hold
                        doomed.set()
                if budget is not None:
                    server.sendall(data[:budget])
                    budget -= len(data)
                    if budget <= 0:
                        break
                    continue
                server.sendall(data)
        except OSError:
            pass
        _hang_up(client, server)

    def _replies(self, server: socket.socket, client: socket.socket, doomed: Any) -> None:
        try:
            while data := server.recv(1 << 16):
                if doomed.is_set() and doomed.hold:
                    doomed.clear()
                    time.sleep(doomed.hold)
                elif doomed.is_set():
                    if doomed.keep:
                        client.sendall(data[: doomed.keep])
                    self.replies_lost += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        _hang_up(client, server)


def _hang_up(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
