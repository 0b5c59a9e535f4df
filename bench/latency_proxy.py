"""A TCP proxy that adds a fixed delay to every round trip, like a server on another host.

Each chunk read from either side is forwarded half the delay later, in order, so a request
and its reply together take ``delay`` longer, and a pipelined batch pays it once. Run it as a
separate process so its threads never compete with the measured client for the GIL::

    python bench/latency_proxy.py --upstream 127.0.0.1:7001 --delay-ms 2 --port 7101
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import socket
import threading
import time


class LatencyProxy:
    def __init__(self, upstream: tuple[str, int], delay: float, port: int = 0) -> None:
        self.upstream = upstream
        self.delay = delay
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self._listener.getsockname()[1]

    def serve_forever(self) -> None:
        while True:
            client, _ = self._listener.accept()
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pump(client, server)
            self._pump(server, client)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        """Forward ``source`` to ``target``, each chunk ``delay / 2`` after it arrived."""
        chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        one_way = self.delay / 2

        def read() -> None:
            try:
                while data := source.recv(1 << 16):
                    chunks.put((time.monotonic() + one_way, data))
            except OSError:
                pass  # the other pump closed this socket: this side is done too
            chunks.put((0.0, b""))

        def write() -> None:
            try:
                while True:
                    due, data = chunks.get()
                    if not data:
                        break
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    target.sendall(data)
            except OSError:
                pass
            finally:
                # One side hung up: hang up the other, which ends the opposite pump too.
                for sock in (source, target):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="host:port of the Redis server")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="added per round trip")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    args = parser.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    proxy = LatencyProxy((host, int(port)), args.delay_ms / 1000, args.port)
    print(proxy.port, flush=True)  # the parent reads the port from the first line
    proxy.serve_forever()


if __name__ == "__main__":
    main()
