"""The redis-server processes the benchmarks start: on free ports (never 6379), stopped after."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

NEVER_USE = frozenset({6379, 6380, 16379, 26379})


def free_port(highest: int = 65535) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in NEVER_USE and port <= highest:
            return port


@contextlib.contextmanager
def redis_server(directory: Path, *extra: str) -> Iterator[int]:
    """A redis-server keeping nothing on disk, with ``extra`` arguments; yields its port."""
    # A cluster node also listens on its port + 10000.
    port = free_port(55535 if "--cluster-enabled" in extra else 65535)
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [binary, *args, "--dir", str(directory), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=port, socket_timeout=1) as probe:
                    probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"redis-server on port {port} did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@contextlib.contextmanager
def redis_cluster(directory: Path, primaries: int = 3) -> Iterator[list[int]]:
    """A Redis Cluster of ``primaries`` primaries and no replica; yields their ports."""
    with contextlib.ExitStack() as stack:
        ports = []
        for i in range(primaries):
            node_dir = directory / f"node-{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            ports.append(
                stack.enter_context(
                    redis_server(
                        node_dir, "--cluster-enabled", "yes", "--cluster-node-timeout", "5000"
                    )
                )
            )
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while not all(_cluster_ok(port) for port in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the benchmark's cluster did not become healthy")
            time.sleep(0.05)
        yield ports


def _cluster_ok(port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=1) as probe:
        info = probe.cluster("INFO")
    return bool(info["cluster_state"] == "ok" and int(info["cluster_slots_ok"]) == 16384)
