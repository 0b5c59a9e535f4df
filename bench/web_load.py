"""A small, bounded HTTP load generator and a launcher for gunicorn / uvicorn (bench and tests).

``run_load`` sends exactly ``total`` GET requests from ``concurrency`` threads, each on its own
keep-alive ``http.client`` connection (reopened when the server closes it, as gunicorn's sync
worker does after every response). Nothing is retried: a failed request is counted as an error.

``serve`` starts a web server on a free 127.0.0.1 port in its own process group, waits until it
answers, and always stops it (SIGTERM, then SIGKILL) when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


@dataclass
class LoadResult:
    """What a load run saw: counts by status, errors, latencies and (if kept) the bodies."""

    requested: int
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    bodies: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def served(self) -> int:
        """Responses received, whatever their status."""
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rps(self) -> float:
        return self.served / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def summary(self) -> str:
        return (
            f"{self.served}/{self.requested} served in {self.seconds:.2f}s "
            f"({self.rps:.0f} req/s), statuses {dict(self.statuses)}, "
            f"{len(self.errors)} errors, p50 {self.percentile(0.5) * 1000:.1f} ms, "
            f"p99 {self.percentile(0.99) * 1000:.1f} ms"
        )


def run_load(
    port: int,
    paths: Sequence[str],
    *,
    total: int,
    concurrency: int,
    keep_bodies: Callable[[str], bool] = lambda path: False,
    requests_per_connection: int = 0,
    timeout: float = 10.0,
    deadline: float = 120.0,
) -> LoadResult:
    """GET ``paths`` round-robin, ``total`` requests in all, from ``concurrency`` threads.

    ``requests_per_connection`` > 0 reopens each keep-alive connection after that many
    requests, so that a server whose workers share one listening socket (uvicorn) spreads
    the load over all of them.
    """
    result = LoadResult(requested=total, seconds=0.0)
    lock = threading.Lock()
    next_index = iter(range(total))
    stop_at = time.monotonic() + deadline

    def take() -> int | None:
        with lock:
            return next(next_index, None)

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        on_this_connection = 0
        try:
            while time.monotonic() < stop_at:
                index = take()
                if index is None:
                    return
                path = paths[index % len(paths)]
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
                    on_this_connection = 0
                on_this_connection += 1
                started = time.perf_counter()
                try:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        result.errors.append(f"{path}: {type(exc).__name__}: {exc}")
                    conn.close()
                    conn = None
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    result.statuses[response.status] += 1
                    result.latencies.append(elapsed)
                    if response.status != 200 or keep_bodies(path):
                        result.bodies.append((path, body))
                if response.will_close or on_this_connection == requests_per_connection:
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, stop_at - time.monotonic()) + timeout)
    result.seconds = time.perf_counter() - started
    unsent = total - result.served - len(result.errors)
    if unsent > 0:
        result.errors.append(f"{unsent} requests not sent before the {deadline:.0f}s deadline")
    return result


# -- web servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def _answers(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status < 500
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass
class WebServer:
    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """The processes the server's master started: its workers (not multiprocessing's
        resource tracker, which uvicorn's spawned workers bring along)."""
        return [
            pid for pid in children_of(self.process.pid) if b"resource_tracker" not in _cmdline(pid)
        ]


def server_command(kind: str, port: int, *, workers: int, threads: int, app: str) -> list[str]:
    """The command line of ``kind``: ``sync`` / ``gthread`` (gunicorn --preload) or ``uvicorn``."""
    bind = f"{HOST}:{port}"
    if kind == "uvicorn":
        return [
            str(BIN / "uvicorn"),
            "--host", HOST, "--port", str(port),
            "--workers", str(workers),
            "--no-access-log", "--log-level", "warning",
            "--app-dir", str(REPO / "example_django"),
            f"{app}.asgi:application",
        ]  # fmt: skip
    command = [
        str(BIN / "gunicorn"),
        "--bind", bind,
        "--workers", str(workers),
        "--preload",
        "--chdir", str(REPO / "example_django"),
        "--pythonpath", f"{REPO / 'example_django'},{REPO / 'bench'},{REPO}",
        "--config", str(REPO / "bench" / "web_gunicorn_conf.py"),
        "--log-level", "warning",
        "--graceful-timeout", "5",
    ]  # fmt: skip
    if kind == "gthread":
        command += ["--worker-class", "gthread", "--threads", str(threads)]
    elif kind != "sync":
        raise ValueError(f"unknown server kind {kind!r}: sync, gthread or uvicorn")
    return [*command, f"{app}.wsgi:application"]


@contextlib.contextmanager
def serve(
    kind: str,
    env: Mapping[str, str],
    *,
    log_dir: Path,
    workers: int = 4,
    threads: int = 4,
    app: str = "example_site",
    ready_path: str = "/health/",
) -> Iterator[WebServer]:
    """Run the example Django site under ``kind`` with ``env`` added; stop it afterwards."""
    port = free_port()
    log_path = log_dir / f"{kind}-{port}.log"
    command = server_command(kind, port, workers=workers, threads=threads, app=app)
    full_env = {
        **os.environ,
        # Not the caller's (pytest-django sets its own): the site's, unless env says otherwise.
        "DJANGO_SETTINGS_MODULE": f"{app}.settings",
        **env,
        "PYTHONPATH": f"{REPO / 'bench'}:{REPO}",
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = WebServer(kind, port, process, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(port, ready_path):
            if process.poll() is not None:
                raise RuntimeError(f"{kind} exited with {process.returncode}:\n{server.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{kind} did not answer within {START_TIMEOUT}s:\n{server.log()}"
                )
            time.sleep(0.1)
        # Every worker is up (gunicorn forks them after the master is ready).
        while len(server.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it was started in its own), SIGKILL if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
    # Workers left behind by a crashed master are in the same group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# -- who holds which connection (Linux /proc) ---------------------------------------------------


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing paren.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def tcp_connections_to(port: int) -> dict[int, int]:
    """``{socket inode: local port}`` of every IPv4 TCP connection to 127.0.0.1:``port``."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        remote_port = int(remote.split(":")[1], 16)
        if remote_port == port and state == "01" and inode:  # 01: ESTABLISHED
            found[inode] = int(local.split(":")[1], 16)
    return found


def connections_by_process(pids: Sequence[int], redis_port: int) -> dict[int, set[int]]:
    """``{pid: local ports}`` of each process's connections to the server on ``redis_port``."""
    to_redis = tcp_connections_to(redis_port)
    return {
        pid: {to_redis[inode] for inode in socket_inodes(pid) if inode in to_redis} for pid in pids
    }
