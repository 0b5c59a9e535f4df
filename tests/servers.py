"""Real redis-server processes for the test-suite (used by ``tests/conftest.py``).

Everything here runs ``/usr/bin/redis-server`` on 127.0.0.1, on ports picked at
random (never 6379), in a directory given by the caller (a pytest temp dir), in
the foreground (``--daemonize no``) with persistence off (``--save ""
--appendonly no``), and logging to ``<dir>/redis.log``.

* :class:`RedisServer` - one process: ``start``/``stop``/``kill``/``restart``.
* :func:`make_tls_material` - a throw-away CA and a server certificate.
* :class:`ClusterDeployment` - 3 primaries + 3 replicas, created with
  ``redis-cli --cluster create``.
* :class:`SentinelDeployment` - a primary, a replica and one sentinel.
* The session registry (:func:`register_session`, :func:`flush_session_servers`)
  records the deployments the session has started, so the autouse fixture can
  flush exactly those before each test.

Every failure is raised as :class:`HarnessError` naming the server, with the
tail of its log.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import faulthandler
import inspect
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

START_TIMEOUT = 20.0  # seconds for one process to answer PING
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
CLUSTER_TIMEOUT = 30.0  # seconds for a cluster to become healthy
SENTINEL_TIMEOUT = 30.0  # seconds for a sentinel to see primary and replica
LOG_TAIL_LINES = 30
CLUSTER_BUS_OFFSET = 10000
CLUSTER_SLOTS = 16384

# Ports the harness never hands out, whatever the OS says about them.
_NEVER_USE = frozenset({6379, 6380, 16379, 26379})
_handed_out: set[int] = set()
_live_servers: set[RedisServer] = set()


class HarnessError(RuntimeError):
    """A test server could not be started, reached or stopped."""


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def _no_client_setinfo() -> dict[str, Any]:
    """Client kwargs that skip CLIENT SETINFO (two round-trips less per probe)."""
    params = inspect.signature(redis.Redis.__init__).parameters
    if "driver_info" in params:  # redis-py >= 7.1; lib_name/lib_version are deprecated
        return {"driver_info": None}
    if "lib_name" in params:
        return {"lib_name": None, "lib_version": None}
    return {}


_NO_CLIENT_SETINFO = _no_client_setinfo()


# --------------------------------------------------------------------------- ports


def _can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(*, cluster_bus: bool = False) -> int:
    """A port on 127.0.0.1 that is free right now and not yet handed out.

    With ``cluster_bus=True`` the port + 10000 (the cluster bus port) must be
    free too, and is reserved as well.
    """
    for _ in range(500):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        wanted = [port]
        if cluster_bus:
            wanted.append(port + CLUSTER_BUS_OFFSET)
        if any(p > 65535 or p in _NEVER_USE or p in _handed_out for p in wanted):
            continue
        if cluster_bus and not _can_bind(port + CLUSTER_BUS_OFFSET):
            continue
        _handed_out.update(wanted)
        return port
    raise HarnessError(f"could not find a free port on {HOST} (cluster_bus={cluster_bus})")


# ----------------------------------------------------------------------------- TLS


class TLSMaterial:
    """Paths of a throw-away CA and a server certificate it signed."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca_cert = directory / "ca.crt"
        self.ca_key = directory / "ca.key"
        self.server_cert = directory / "server.crt"
        self.server_key = directory / "server.key"

        self._context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"TLSMaterial({str(self.dir)!r})"

    def client_context(self) -> ssl.SSLContext:
        """A cached client context trusting only our CA (hostname checked).

        redis-py builds a context per connection and loads the system CA store
        into it each time (~70 ms here); the harness's own flushes avoid that.
        """
        if self._context is None:
            self._context = ssl.create_default_context(cafile=str(self.ca_cert))
        return self._context


_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = placeholder

[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def make_tls_material(directory: Path) -> TLSMaterial:
    """Create a self-signed CA and a server certificate (SAN IP:127.0.0.1, DNS:localhost).

    Uses the openssl CLI; EC P-256 keys keep it fast (a few tens of ms).
    """
    directory.mkdir(parents=True, exist_ok=True)
    tls = TLSMaterial(directory)
    cnf = directory / "openssl.cnf"
    cnf.write_text(_OPENSSL_CNF)
    csr = directory / "server.csr"
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        [OPENSSL, "req", "-config", str(cnf), "-x509", "-new", *newkey,
         "-keyout", str(tls.ca_key), "-out", str(tls.ca_cert), "-days", "3",
         "-subj", "/O=redis_conn tests/CN=redis_conn test CA", "-extensions", "v3_ca"],
        [OPENSSL, "req", "-config", str(cnf), "-new", *newkey,
         "-keyout", str(tls.server_key), "-out", str(csr),
         "-subj", "/O=redis_conn tests/CN=localhost"],
        [OPENSSL, "x509", "-req", "-in", str(csr), "-CA", str(tls.ca_cert),
         "-CAkey", str(tls.ca_key), "-set_serial", str(secrets.randbits(63)),
         "-out", str(tls.server_cert), "-days", "3",
         "-extfile", str(cnf), "-extensions", "v3_server"],
    ]  # fmt: skip
    for cmd in commands:
        proc = subprocess.run(
            cmd, cwd=directory, capture_output=True, text=True, timeout=60, check=False
        )
        if proc.returncode != 0:
            raise HarnessError(
                f"TLS material: {' '.join(cmd)} failed with exit code {proc.returncode}\n"
                f"{proc.stdout}{proc.stderr}"
            )
    return tls


# ---------------------------------------------------------------------- one server


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 (standalone, cluster node or sentinel).

    ``start()`` spawns it and waits until it answers PING; ``stop()`` sends
    SIGTERM then SIGKILL after :data:`STOP_TIMEOUT`; ``kill()`` sends SIGKILL;
    ``restart()`` starts it again on the same port (its data is gone - there
    is no persistence, except a cluster node's ``nodes.conf`` and a sentinel's
    rewritten config). ``client(**kw)`` returns a plain ``redis.Redis``
    connected to it (TLS settings included); the caller closes it.
    """

    def __init__(
        self,
        name: str,
        base_dir: Path,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        tls: TLSMaterial | None = None,
        unix_socket: bool = False,
        acl: tuple[str, str] | None = None,
        cluster: bool = False,
        sentinel_config: Callable[[int], str] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.name = name
        self.host = HOST
        self.dir = Path(base_dir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self._auto_port = port is None
        self.port = port if port is not None else free_port(cluster_bus=cluster)
        self.log_path = self.dir / "redis.log"
        self.tls = tls
        self.cluster = cluster
        self.is_sentinel = sentinel_config is not None
        self.start_timeout = start_timeout
        self.acl_user, self.acl_password = acl if acl else (None, None)
        self.unix_socket: str | None = None
        if unix_socket:
            sock_path = self.dir / "redis.sock"
            if len(str(sock_path)) > 100:  # sun_path is 108 bytes
                sock_path = Path(tempfile.mkdtemp(prefix="redis-sock-")) / "redis.sock"
            self.unix_socket = str(sock_path)
        # A sentinel's config, ``sentinel_config(port)``, is written until the first
        # successful start; after that sentinel rewrites it with its state, which a
        # restart keeps.
        self._sentinel_config = sentinel_config
        self.config_path = self.dir / "sentinel.conf" if sentinel_config else None
        self.extra_args = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._ever_ready = False
        self.starts = 0

    # ---- description
    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<RedisServer {self.name} {self.host}:{self.port} {state}>"

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/0"

    @property
    def unix_url(self) -> str | None:
        return f"unix://{self.unix_socket}?db=0" if self.unix_socket else None

    @property
    def acl_url(self) -> str | None:
        if not self.acl_user:
            return None
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.acl_user}:{self.acl_password}@{self.host}:{self.port}/0"

    @property
    def ca_cert(self) -> str | None:
        return str(self.tls.ca_cert) if self.tls else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def describe(self) -> str:
        kind = "sentinel" if self.is_sentinel else "cluster node" if self.cluster else "server"
        tls = " (TLS)" if self.tls else ""
        return f"redis {kind} {self.name!r}{tls} on {self.host}:{self.port} (dir {self.dir})"

    def last_start_log(self) -> str:
        """The log written since the latest harness start marker."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text.rsplit("==== harness start #", 1)[-1]

    def port_clash(self) -> bool:
        """Did the latest start fail because its port (or cluster bus port) was taken?"""
        return "Address already in use" in self.last_start_log()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<no log: {exc}>"
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, message: str) -> HarnessError:
        """A HarnessError naming this server and quoting its log tail."""
        return HarnessError(
            f"{self.describe()}: {message}\n"
            f"---- last {LOG_TAIL_LINES} lines of {self.log_path} ----\n{self.log_tail()}"
        )

    # ---- command line
    def command(self) -> list[str]:
        if self.config_path is not None:
            return [REDIS_SERVER, str(self.config_path), "--sentinel"]
        args = [
            REDIS_SERVER,
            "--bind", self.host,
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", "",
            "--repl-diskless-sync-delay", "0",  # replicas sync at once, not after 5 s
            "--shutdown-timeout", "0",  # SIGTERM does not wait for lagging replicas
            "--enable-debug-command", "local",  # DEBUG SLEEP etc. for fault tests
        ]  # fmt: skip
        if self.tls:
            args += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.server_cert),
                "--tls-key-file", str(self.tls.server_key),
                "--tls-ca-cert-file", str(self.tls.ca_cert),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        else:
            args += ["--port", str(self.port)]
        if self.unix_socket:
            args += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        if self.acl_user:
            args += ["--user", self.acl_user, "on", f">{self.acl_password}", "~*", "&*", "+@all"]
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.dir / "nodes.conf"),
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        return args + self.extra_args

    # ---- clients
    def connection_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis`` reaching this server over TCP."""
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.tls:
            kwargs.update(ssl=True, ssl_ca_certs=str(self.tls.ca_cert))
        return kwargs

    def client(self, **kwargs: Any) -> redis.Redis:
        """A raw ``redis.Redis`` for assertions. The caller must close it."""
        return redis.Redis(**{**self.connection_kwargs(), **kwargs})

    def probe_client(self, timeout: float = 2.0, **kwargs: Any) -> redis.Redis:
        """A client with short timeouts and no retries (for harness checks)."""
        settings: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": _no_retry(),
            "decode_responses": True,
            **_NO_CLIENT_SETINFO,
        }
        return self.client(**{**settings, **kwargs})

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            with self.probe_client(timeout) as c:
                return bool(c.ping())
        except (redis.RedisError, OSError):
            return False

    # ---- lifecycle
    def spawn(self) -> None:
        """Start the process without waiting for it (see :meth:`wait_ready`)."""
        if self.is_running:
            raise HarnessError(f"{self.describe()} is already running (pid {self.pid})")
        if self._proc is not None:
            self._proc.wait()
        self.starts += 1
        if self._sentinel_config is not None and not self._ever_ready:
            assert self.config_path is not None
            self.config_path.write_text(self._sentinel_config(self.port))
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== harness start #{self.starts}: {cmd!r}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            except OSError as exc:
                raise self.failure(f"could not execute {cmd[0]}: {exc}") from exc
        self._paused = False
        _live_servers.add(self)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll PING until it answers; on timeout or early exit stop it and raise."""
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        last_error: BaseException | None = None
        while True:
            proc = self._proc
            if proc is None:
                raise HarnessError(f"{self.describe()}: wait_ready() before start()")
            code = proc.poll()
            if code is not None:
                _live_servers.discard(self)
                raise self.failure(f"exited with code {code} during start-up")
            try:
                with self.probe_client(0.5) as c:
                    # Check the answer comes from *our* process, not a squatter on the port.
                    answering_pid = int(c.info("server")["process_id"])
                if answering_pid == proc.pid:
                    self._ever_ready = True
                    return
                last_error = HarnessError(f"port answered by another process (pid {answering_pid})")
            except (redis.RedisError, OSError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                self.stop()
                raise self.failure(
                    f"did not answer PING within {timeout or self.start_timeout:.0f}s "
                    f"(last error: {last_error!r})"
                )
            time.sleep(0.02)

    def start(self) -> RedisServer:
        """Spawn and wait for PING. If the port turns out to be taken (another test
        run raced us for it), retry: on a fresh port if the port was picked
        automatically and the server never ran, on the same port a bit later if it
        ran before (a restart); a port given by the caller is not retried."""
        self.spawn()
        self._wait_ready_or_retry()
        return self

    def _wait_ready_or_retry(self, timeout: float | None = None, attempts: int = 5) -> None:
        for attempt in range(attempts):
            try:
                self.wait_ready(timeout)
                return
            except HarnessError:
                retryable = self.port_clash() and (self._auto_port or self._ever_ready)
                if attempt == attempts - 1 or self.is_running or not retryable:
                    raise
            if self._ever_ready:  # a restart: the port is ours, wait for it to be free
                time.sleep(0.2 * (attempt + 1))
            else:
                self.port = free_port(cluster_bus=self.cluster)
            self.spawn()

    def _terminate(self) -> None:
        if self.is_running:
            assert self._proc is not None
            self._proc.terminate()
            if self._paused:
                self._proc.send_signal(signal.SIGCONT)
                self._paused = False

    def _reap(self, timeout: float = STOP_TIMEOUT) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _live_servers.discard(self)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds."""
        self._terminate()
        self._reap(timeout)

    def kill(self) -> None:
        """SIGKILL the process (a crash: no shutdown, socket files left behind)."""
        if self.is_running:
            assert self._proc is not None
            self._proc.kill()
        self._reap()
        self._paused = False

    def restart(self, timeout: float | None = None) -> RedisServer:
        """Stop it if running, then start it on the same port and wait for PING."""
        self.stop()
        self.spawn()
        self._wait_ready_or_retry(timeout)
        return self

    def pause(self) -> None:
        """SIGSTOP: the port accepts connections but nothing answers (a hung server)."""
        if not self.is_running:
            raise HarnessError(f"{self.describe()} is not running")
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.is_running:
            assert self._proc is not None
            self._proc.send_signal(signal.SIGCONT)
        self._paused = False

    def ensure_running(self) -> bool:
        """Resume it if paused and restart it if dead. True if anything was done."""
        if self._paused:
            self.resume()
            return True
        if not self.is_running:
            self._reap()
            self.spawn()
            self._wait_ready_or_retry()
            return True
        return False

    # ---- helpers for assertions / set-up
    def info(self, section: str) -> dict[str, Any]:
        with self.probe_client() as c:
            return dict(c.info(section))

    def raw_command(self, *args: str, timeout: float = 10.0) -> bytes:
        """Send one command over a fresh socket (TLS with a cached context) and return
        the first line of the reply. Cheap: no redis-py client, no SSL context build."""
        payload = b"".join(
            [f"*{len(args)}\r\n".encode()]
            + [f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args]
        )
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            if self.tls:
                sock = self.tls.client_context().wrap_socket(sock, server_hostname=self.host)
            sock.sendall(payload)
            reply = b""
            while b"\r\n" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError(f"connection closed after {reply!r}")
                reply += chunk
        finally:
            sock.close()
        return reply.split(b"\r\n", 1)[0]

    def flushall(self, timeout: float = 10.0) -> None:
        try:
            reply = self.raw_command("FLUSHALL", timeout=timeout)
        except OSError as exc:
            raise self.failure(f"FLUSHALL failed: {exc!r}") from exc
        if reply != b"+OK":
            raise self.failure(f"FLUSHALL failed: {reply.decode(errors='replace')}")


def start_all(servers: Iterable[RedisServer]) -> None:
    """Spawn every server, then wait for each (they boot in parallel).

    On failure every one of them is stopped before the error propagates.
    """
    servers = list(servers)
    try:
        for server in servers:
            server.spawn()
        for server in servers:
            server._wait_ready_or_retry()
    except BaseException:
        stop_all(servers)
        raise


def stop_all(servers: Iterable[RedisServer], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every server, then reap each (SIGKILL after ``timeout``)."""
    servers = list(servers)
    for server in servers:
        with contextlib.suppress(OSError):
            server._terminate()
    for server in servers:
        server._reap(timeout)


async def eventually(predicate: Callable[[], bool], what: str, timeout: float) -> None:
    """From a coroutine: poll ``predicate`` every 5 ms, letting the event loop run between
    polls, until it is true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.005)


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    describe: Callable[[], str],
    interval: float = 0.05,
) -> Any:
    """Call ``condition`` until it returns a truthy value; raise HarnessError on timeout.

    Redis/OS errors raised by ``condition`` count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
        except (redis.RedisError, OSError) as exc:
            last_error = exc
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise HarnessError(f"timed out after {timeout:.0f}s: {describe()}{detail}")
        time.sleep(interval)


class Finished:
    """What :func:`finish_within` saw: the call's value or error, and how long it took."""

    def __init__(self, value: Any, error: BaseException | None, seconds: float) -> None:
        self.value, self.error, self.seconds = value, error, seconds


def finish_within(call: Callable[[], Any], timeout: float, describe: Callable[[], str]) -> Finished:
    """Run ``call`` on a daemon thread and wait for it at most ``timeout`` seconds.

    For a wait whose length the test does not bound (a pool waiting out POOL_TIMEOUT): the
    limit only tells "it ends" from "it hangs", so it is far above any honest duration, and
    a hang fails the test with HarnessError instead of stopping the run.
    """
    outcome: list[Finished] = []

    def run() -> None:
        started = time.monotonic()
        try:
            value = call()
        except BaseException as exc:  # handed to the caller, which asserts on it
            outcome.append(Finished(None, exc, time.monotonic() - started))
        else:
            outcome.append(Finished(value, None, time.monotonic() - started))

    thread = threading.Thread(target=run, name="finish_within", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise HarnessError(f"still running after {timeout:g}s: {describe()}")
    return outcome[0]


#: Where :func:`hang_watchdog` writes the stacks of a hung test (CI prints what it finds there).
HANG_DIR = Path(os.environ.get("REDIS_CONN_HANG_DIR") or tempfile.gettempdir())


@contextlib.contextmanager
def hang_watchdog(seconds: float, test: str) -> Iterator[None]:
    """End the whole run (exit status 1) with every thread's stack if the block takes more
    than ``seconds``: a deadlock is a failure, never a stuck CI run.

    The stacks go to ``HANG_DIR/redis_conn-hang-<pid>.txt``, not to stderr: pytest captures
    stderr while a test runs and that capture dies with the process, so a hang would end the
    run with no word of where. The file is removed when the block ends in time.
    """
    path = HANG_DIR / f"redis_conn-hang-{os.getpid()}.txt"
    try:
        with path.open("w", encoding="utf-8") as file:
            file.write(f"{test} took more than {seconds:g} s; every thread's stack:\n")
            file.flush()
            faulthandler.dump_traceback_later(seconds, exit=True, file=file)
            try:
                yield
            finally:
                faulthandler.cancel_dump_traceback_later()
    finally:
        path.unlink(missing_ok=True)


@atexit.register
def _kill_leftovers() -> None:
    """Safety net: never leave redis-server processes behind the interpreter."""
    for server in list(_live_servers):
        with contextlib.suppress(Exception):
            server.kill()


# ------------------------------------------------------------------------- cluster


class ClusterDeployment:
    """A Redis Cluster of ``primaries`` primaries, each with ``replicas_per_primary`` replicas."""

    def __init__(
        self, base_dir: Path, *, primaries: int = 3, replicas_per_primary: int = 1
    ) -> None:
        self.name = "redis_cluster"
        self.dir = Path(base_dir)
        self.expected_primaries = primaries
        self.replicas_per_primary = replicas_per_primary
        count = primaries * (1 + replicas_per_primary)
        self.nodes = [
            RedisServer(f"cluster-node-{i}", self.dir, cluster=True) for i in range(count)
        ]
        self.primaries: list[int] = []  # ports, as assigned at creation
        self.replicas: list[int] = []
        self.create_output = ""

    def __repr__(self) -> str:
        return f"<ClusterDeployment primaries={self.primaries} replicas={self.replicas}>"

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        """A startup node: ``redis://127.0.0.1:PORT``."""
        return f"redis://{HOST}:{self.nodes[0].port}"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, n.port) for n in self.nodes]

    @property
    def primary_nodes(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.port in self.primaries]

    @property
    def replica_nodes(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.port in self.replicas]

    def node(self, port: int) -> RedisServer:
        for n in self.nodes:
            if n.port == port:
                return n
        raise KeyError(port)

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A ``redis.cluster.RedisCluster`` (the caller closes it)."""
        return redis.cluster.RedisCluster(host=HOST, port=self.nodes[0].port, **kwargs)

    def _fail(self, message: str) -> HarnessError:
        tails = "\n".join(
            f"---- {n.describe()} [{'running' if n.is_running else 'NOT running'}] "
            f"----\n{n.log_tail(8)}"
            for n in self.nodes
        )
        return HarnessError(f"{self.name}: {message}\n{tails}")

    def start(self) -> ClusterDeployment:
        try:
            start_all(self.nodes)
            cmd = [REDIS_CLI, "--cluster", "create"]
            cmd += [f"{HOST}:{n.port}" for n in self.nodes]
            cmd += ["--cluster-replicas", str(self.replicas_per_primary), "--cluster-yes"]
            try:
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=CLUSTER_TIMEOUT, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise self._fail(f"{' '.join(cmd)} timed out: {exc.stdout!r}") from exc
            self.create_output = proc.stdout + proc.stderr
            if proc.returncode != 0:
                raise self._fail(
                    f"{' '.join(cmd)} exited with {proc.returncode}:\n{self.create_output}"
                )
            self.wait_healthy(CLUSTER_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_all(self.nodes)

    def node_states(self) -> dict[int, tuple[dict[str, Any], list[Any]]]:
        """``{port: (CLUSTER INFO, ROLE)}`` for every node (one round-trip each)."""
        states = {}
        for n in self.nodes:
            with n.probe_client() as c:
                pipe = c.pipeline(transaction=False)
                pipe.cluster("INFO")
                pipe.execute_command("ROLE")
                info, role = pipe.execute()
            states[n.port] = (info, role)
        return states

    def health_problems(
        self, states: dict[int, tuple[dict[str, Any], list[Any]]] | None = None
    ) -> list[str]:
        """Everything that keeps the cluster from being healthy (empty list: healthy)."""
        if states is None:
            states = self.node_states()
        problems = []
        total = len(self.nodes)
        for port, (info, role) in states.items():
            if info.get("cluster_state") != "ok":
                problems.append(f"{port}: cluster_state={info.get('cluster_state')}")
            if int(info.get("cluster_slots_ok", 0)) != CLUSTER_SLOTS:
                problems.append(f"{port}: cluster_slots_ok={info.get('cluster_slots_ok')}")
            if int(info.get("cluster_known_nodes", 0)) != total:
                problems.append(f"{port}: cluster_known_nodes={info.get('cluster_known_nodes')}")
            if role[0] == "master":
                linked = len(role[2])
                if linked < self.replicas_per_primary:
                    problems.append(f"primary {port} has {linked} replicas attached")
            elif role[0] == "slave" and role[3] != "connected":
                problems.append(f"replica {port} link to {role[2]} is {role[3]}")
        primaries = sorted(p for p, (_, role) in states.items() if role[0] == "master")
        if len(primaries) != self.expected_primaries:
            problems.append(f"primaries are {primaries}")
        return problems

    def wait_healthy(self, timeout: float = CLUSTER_TIMEOUT) -> None:
        """Wait until every node says cluster_state:ok with all slots served, there
        are 3 primaries and each has its replica attached; then record the current
        roles in ``.primaries`` / ``.replicas``."""
        last: list[str] = []
        states: dict[int, tuple[dict[str, Any], list[Any]]] = {}

        def healthy() -> bool:
            nonlocal last, states
            states = self.node_states()
            last = self.health_problems(states)
            return not last

        try:
            wait_until(healthy, timeout, lambda: f"cluster not healthy: {last}")
        except HarnessError as exc:
            raise self._fail(str(exc)) from exc
        self.primaries = sorted(p for p, (_, r) in states.items() if r[0] == "master")
        self.replicas = sorted(p for p, (_, r) in states.items() if r[0] == "slave")

    def flush(self) -> None:
        """Revive dead nodes, wait for health, FLUSHALL every current primary."""
        for n in self.nodes:
            n.ensure_running()
        self.wait_healthy(CLUSTER_TIMEOUT)
        for n in self.primary_nodes:
            try:
                with n.probe_client(10.0) as c:
                    pipe = c.pipeline(transaction=False)
                    pipe.flushall()
                    pipe.execute_command("WAIT", self.replicas_per_primary, 1000)
                    pipe.execute()
            except (redis.RedisError, OSError) as exc:
                raise n.failure(f"FLUSHALL failed: {exc!r}") from exc


# ------------------------------------------------------------------------ sentinel


class SentinelDeployment:
    """A primary, one replica (``--replicaof``) and ONE sentinel monitoring them."""

    def __init__(self, base_dir: Path, *, service_name: str = "mymaster") -> None:
        self.name = "redis_sentinel"
        self.dir = Path(base_dir)
        self.service_name = service_name
        self.primary = RedisServer("sentinel-primary", self.dir)
        # --replicaof is filled in by start(), once the primary's port is final.
        self.replica = RedisServer("sentinel-replica", self.dir)
        self.sentinel = RedisServer("sentinel", self.dir, sentinel_config=self._sentinel_config)

    def _sentinel_config(self, port: int) -> str:
        name = self.service_name
        return "\n".join(
            [
                f"port {port}",
                f"bind {HOST}",
                "daemonize no",
                'logfile ""',
                f"dir {self.sentinel.dir}",
                "sentinel resolve-hostnames no",
                f"sentinel monitor {name} {HOST} {self.primary.port} 1",
                f"sentinel down-after-milliseconds {name} 1000",
                f"sentinel failover-timeout {name} 5000",
                "",
            ]
        )

    def __repr__(self) -> str:
        return (
            f"<SentinelDeployment {self.service_name} primary={self.primary.port} "
            f"replica={self.replica.port} sentinel={self.sentinel.port}>"
        )

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [(HOST, self.sentinel.port)]

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, self.replica, self.sentinel]

    def _fail(self, message: str) -> HarnessError:
        tails = "\n".join(
            f"---- {s.describe()} [{'running' if s.is_running else 'NOT running'}] "
            f"----\n{s.log_tail(12)}"
            for s in self.servers
        )
        return HarnessError(f"{self.name}: {message}\n{tails}")

    def primary_address(self) -> tuple[str, int] | None:
        """What the sentinel currently reports for the service (None if unknown)."""
        with self.sentinel.probe_client() as c:
            addr = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name)
        if not addr:
            return None
        host, port = addr
        return str(host), int(port)

    def replica_states(self) -> list[dict[str, Any]]:
        with self.sentinel.probe_client() as c:
            return list(c.sentinel_slaves(self.service_name))

    def current_primary(self) -> RedisServer:
        """The RedisServer the sentinel currently reports as primary."""
        addr = self.primary_address()
        for s in (self.primary, self.replica):
            if addr == (s.host, s.port):
                return s
        raise self._fail(f"sentinel reports primary {addr}, which is not one of ours")

    def _replica_linked(self) -> bool:
        return self.replica.info("replication").get("master_link_status") == "up"

    def _sentinel_ready(self) -> bool:
        if self.primary_address() != (HOST, self.primary.port):
            return False
        return any(
            r.get("port") == self.replica.port
            and r.get("is_slave")
            and not r.get("is_sdown")
            and not r.get("is_disconnected")
            and r.get("master-link-status") == "ok"
            for r in self.replica_states()
        )

    def start(self) -> SentinelDeployment:
        try:
            self.primary.start()
            self.replica.extra_args = ["--replicaof", HOST, str(self.primary.port)]
            self.replica.start()
            # The replica must be attached before the sentinel's first INFO to the
            # primary; otherwise the sentinel only learns about it 10 s later.
            try:
                wait_until(
                    self._replica_linked,
                    SENTINEL_TIMEOUT,
                    lambda: f"replica {self.replica.port} never linked to {self.primary.port}",
                )
            except HarnessError as exc:
                raise self._fail(str(exc)) from exc
            self.sentinel.start()
            try:
                wait_until(
                    self._sentinel_ready,
                    SENTINEL_TIMEOUT,
                    lambda: (
                        f"sentinel never reported primary {HOST}:{self.primary.port} "
                        f"with replica {self.replica.port} "
                        f"(it says primary={self._safe(self.primary_address)}, "
                        f"replicas={self._safe(self.replica_states)})"
                    ),
                )
            except HarnessError as exc:
                raise self._fail(str(exc)) from exc
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _safe(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            return f"<{exc!r}>"

    def stop(self) -> None:
        stop_all([self.sentinel, self.replica, self.primary])

    def flush(self, timeout: float = 15.0) -> None:
        """Restart dead processes, then FLUSHALL the primary the sentinel reports now."""
        for s in self.servers:
            s.ensure_running()

        def flushed() -> bool:
            primary = self.current_primary()
            with primary.probe_client(10.0) as c:
                pipe = c.pipeline(transaction=False)
                pipe.flushall()  # ReadOnlyError while a failover is settling: retried
                pipe.execute_command("WAIT", 1, 1000)
                pipe.execute()
            return True

        try:
            wait_until(flushed, timeout, lambda: "FLUSHALL on the sentinel's primary")
        except HarnessError as exc:
            raise self._fail(str(exc)) from exc


# ------------------------------------------------------------------------ registry


class Flushable(Protocol):
    name: str

    def flush(self) -> None: ...


class StandaloneFlush:
    """Adapter: flush (and revive) a standalone session server."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.name = server.name

    def flush(self) -> None:
        self.server.ensure_running()
        self.server.flushall()


_session_registry: dict[str, Flushable] = {}


def register_session(key: str, deployment: Flushable) -> None:
    """Record a started session deployment so that it is flushed before each test."""
    _session_registry[key] = deployment


def unregister_session(key: str) -> None:
    _session_registry.pop(key, None)


def started_session_servers() -> dict[str, Flushable]:
    return dict(_session_registry)


def flush_session_servers() -> list[str]:
    """FLUSHALL every registered session deployment; returns the keys flushed.

    A session process that a test killed or paused is revived first.
    """
    flushed = []
    for key, deployment in list(_session_registry.items()):
        deployment.flush()
        flushed.append(key)
    return flushed


def running_pids() -> list[int]:
    """PIDs of the redis processes this module started and has not reaped."""
    return sorted(s.pid for s in _live_servers if s.is_running and s.pid is not None)


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (containers may not reap orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" not in status


# conftest imports this module as ``servers`` (tests/ is on sys.path); with
# ``pythonpath = ["."]`` it is also reachable as ``tests.servers``. Make both names
# one module object, so there is one registry, one set of handed-out ports, and
# one HarnessError class.
for _alias in ("servers", "tests.servers"):
    sys.modules.setdefault(_alias, sys.modules[__name__])
