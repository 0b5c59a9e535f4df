"""Proof that the real-server fixtures in conftest.py / servers.py work."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry
from servers import (
    CLUSTER_BUS_OFFSET,
    CLUSTER_SLOTS,
    ClusterDeployment,
    HarnessError,
    RedisServer,
    SentinelDeployment,
    StandaloneFlush,
    flush_session_servers,
    free_port,
    pid_alive,
    register_session,
    started_session_servers,
    unregister_session,
)

TESTS_DIR = Path(__file__).resolve().parent


def no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


# ---------------------------------------------------------------- standalone


def test_redis_server_answers_on_tcp_and_unix_socket(redis_server: RedisServer) -> None:
    assert redis_server.host == "127.0.0.1"
    assert redis_server.port != 6379
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.unix_url == f"unix://{redis_server.unix_socket}?db=0"
    assert redis_server.is_running

    with redis_server.client(decode_responses=True) as tcp:
        assert tcp.ping() is True
        assert tcp.connection_pool.connection_kwargs["port"] == redis_server.port
        # The harness promises no persistence and a foreground process.
        assert tcp.config_get("save") == {"save": ""}
        assert tcp.config_get("appendonly") == {"appendonly": "no"}
        assert tcp.config_get("daemonize") == {"daemonize": "no"}
        tcp.set("harness:k", "over-tcp")

    assert redis_server.unix_socket is not None
    mode = os.stat(redis_server.unix_socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o700
    with redis.Redis.from_url(redis_server.unix_url, decode_responses=True) as unix:
        assert unix.ping() is True
        assert unix.get("harness:k") == "over-tcp"  # same server, other transport
        info = unix.info("server")
        assert info["tcp_port"] == redis_server.port


def test_server_b_is_a_separate_server(
    redis_server: RedisServer, redis_server_b: RedisServer
) -> None:
    assert redis_server_b.port != redis_server.port
    with redis_server.client() as a, redis_server_b.client() as b:
        assert a.ping() and b.ping()
        a.set("only-on-a", "1")
        assert b.exists("only-on-a") == 0
        assert a.info("server")["run_id"] != b.info("server")["run_id"]


def test_acl_user_authenticates_and_wrong_password_fails(redis_server_b: RedisServer) -> None:
    assert redis_server_b.acl_user == "app"
    assert redis_server_b.acl_password == "app-s3cret-pw"
    assert redis_server_b.acl_url == (
        f"redis://app:app-s3cret-pw@127.0.0.1:{redis_server_b.port}/0"
    )
    with redis.Redis.from_url(redis_server_b.acl_url, decode_responses=True) as app:
        assert app.acl_whoami() == "app"
        app.set("acl:k", "v")
        assert app.get("acl:k") == "v"

    bad_url = redis_server_b.acl_url.replace("app-s3cret-pw", "wrong-pw")
    with (
        redis.Redis.from_url(bad_url, retry=no_retry()) as bad,
        pytest.raises(redis.AuthenticationError),
    ):
        bad.ping()

    # The default user stays open.
    with redis_server_b.client(decode_responses=True) as default:
        assert default.acl_whoami() == "default"


# ---------------------------------------------------------------------- TLS


def test_tls_server_requires_the_ca(tls_server: RedisServer) -> None:
    assert tls_server.url == f"rediss://127.0.0.1:{tls_server.port}/0"
    assert tls_server.ca_cert is not None and Path(tls_server.ca_cert).is_file()

    # Verified TLS, hostname checked against the IP SAN and the DNS SAN.
    for url in (tls_server.url, tls_server.url.replace("127.0.0.1", "localhost")):
        with redis.Redis.from_url(
            url, ssl_ca_certs=tls_server.ca_cert, ssl_check_hostname=True
        ) as ok:
            assert ok.ping() is True
            assert ok.config_get("port") == {"port": "0"}  # no plain-text port at all

    # Without the CA the certificate does not verify.
    with (
        redis.Redis.from_url(tls_server.url, retry=no_retry()) as untrusted,
        pytest.raises(redis.ConnectionError, match="certificate verify failed"),
    ):
        untrusted.ping()

    # Plain text on the TLS port does not work either.
    with (
        redis.Redis(
            host="127.0.0.1", port=tls_server.port, retry=no_retry(), socket_timeout=2
        ) as plain,
        pytest.raises(redis.ConnectionError),
    ):
        plain.ping()


# ------------------------------------------------------------------ cluster


def test_cluster_has_three_primaries_and_is_ok(redis_cluster: ClusterDeployment) -> None:
    assert len(redis_cluster.nodes) == 6
    assert len(redis_cluster.primaries) == 3
    assert len(redis_cluster.replicas) == 3
    assert set(redis_cluster.primaries).isdisjoint(redis_cluster.replicas)
    assert redis_cluster.url == f"redis://127.0.0.1:{redis_cluster.nodes[0].port}"

    for node in redis_cluster.nodes:
        with node.client(decode_responses=True) as c:
            info = c.cluster("INFO")
            assert info["cluster_state"] == "ok", node
            assert int(info["cluster_slots_ok"]) == CLUSTER_SLOTS
            assert int(info["cluster_known_nodes"]) == 6
            role = c.execute_command("ROLE")
        if node.port in redis_cluster.primaries:
            assert role[0] == "master"
            assert len(role[2]) == 1  # its replica is attached
        else:
            assert role[0] == "slave"
            assert int(role[2]) in redis_cluster.primaries
            assert role[3] == "connected"

    with redis.cluster.RedisCluster.from_url(redis_cluster.url, decode_responses=True) as rc:
        keys = [f"harness:{i}" for i in range(30)]
        for key in keys:
            rc.set(key, key)
        assert [rc.get(k) for k in keys] == keys
        owners = {rc.get_node_from_key(k).port for k in keys}
        assert owners == set(redis_cluster.primaries)  # keys spread over all 3 shards


# ----------------------------------------------------------------- sentinel


def test_sentinel_reports_the_primary(redis_sentinel: SentinelDeployment) -> None:
    assert redis_sentinel.service_name == "mymaster"
    assert redis_sentinel.sentinels == [("127.0.0.1", redis_sentinel.sentinel.port)]
    primary, replica = redis_sentinel.primary, redis_sentinel.replica

    sentinel = redis.sentinel.Sentinel(redis_sentinel.sentinels, socket_timeout=2)
    try:
        assert sentinel.discover_master("mymaster") == ("127.0.0.1", primary.port)
        assert sentinel.discover_slaves("mymaster") == [("127.0.0.1", replica.port)]
        with sentinel.master_for("mymaster", decode_responses=True) as m:
            m.set("sentinel:k", "v")
            assert m.execute_command("WAIT", 1, 2000) == 1
        with replica.client(decode_responses=True) as r:
            assert r.get("sentinel:k") == "v"
            assert r.info("replication")["role"] == "slave"
    finally:
        for s in sentinel.sentinels:
            s.close()


# ---------------------------------------------------------- killable server


def test_killable_server_sigkill_and_restart_on_same_port(killable_server: RedisServer) -> None:
    port, pid = killable_server.port, killable_server.pid
    assert pid is not None
    with killable_server.client() as c:
        c.set("k", "before")

    killable_server.kill()
    assert not killable_server.is_running
    assert not pid_alive(pid)
    with (
        killable_server.client(retry=no_retry(), socket_connect_timeout=1) as c,
        pytest.raises(redis.ConnectionError),
    ):
        c.ping()

    killable_server.restart()
    assert killable_server.is_running
    assert killable_server.port == port
    assert killable_server.pid != pid
    with killable_server.client() as c:
        assert c.ping() is True
        assert c.get("k") is None  # no persistence: a crash loses the data
    assert "harness start #2" in killable_server.log_path.read_text()


def test_killable_server_pause_makes_it_hang(killable_server: RedisServer) -> None:
    killable_server.pause()
    with (
        killable_server.client(retry=no_retry(), socket_timeout=0.3) as c,
        pytest.raises(redis.TimeoutError),
    ):
        c.ping()
    killable_server.resume()
    with killable_server.client() as c:
        assert c.ping() is True


# ------------------------------------------------------------------ flushing


def test_flush_covers_started_session_servers(
    redis_server: RedisServer, redis_server_b: RedisServer, tls_server: RedisServer
) -> None:
    servers = (redis_server, redis_server_b, tls_server)
    started = started_session_servers()
    assert {"redis_server", "redis_server_b", "tls_server"} <= set(started)
    for server in servers:
        with server.client() as c:
            assert c.dbsize() == 0  # flushed before this test
            c.mset({"x": 1, "y": 2})
    with redis_server.client(db=3) as c:
        c.set("in-db-3", 1)
    with redis_server.client() as c:
        clients_before = len(c.client_list())
    assert set(flush_session_servers()) == set(started_session_servers())
    for server in servers:
        with server.client() as c:
            assert c.dbsize() == 0
    with redis_server.client(db=3) as c:
        assert c.dbsize() == 0
    with redis_server.client() as c:
        # The flush leaves no connection of its own behind.
        assert len(c.client_list()) == clients_before


def test_flush_clears_every_cluster_primary(redis_cluster: ClusterDeployment) -> None:
    with redis.cluster.RedisCluster.from_url(redis_cluster.url) as rc:
        for i in range(30):
            rc.set(f"flush:{i}", i)
    sizes = []
    for node in redis_cluster.primary_nodes:
        with node.client() as c:
            sizes.append(c.dbsize())
    assert all(size > 0 for size in sizes)
    flush_session_servers()
    for node in redis_cluster.nodes:
        with node.client() as c:
            assert c.dbsize() == 0, node


def test_flush_revives_a_killed_session_server(tmp_path: Path) -> None:
    server = RedisServer("revive-me", tmp_path).start()
    register_session("test-revive", StandaloneFlush(server))
    try:
        with server.client() as c:
            c.set("k", "v")
        server.kill()
        assert "test-revive" in flush_session_servers()
        assert server.is_running
        with server.client() as c:
            assert c.ping() is True
            assert c.dbsize() == 0
    finally:
        unregister_session("test-revive")
        server.stop()
    assert not server.is_running


def test_sentinel_flush_follows_a_failover(tmp_path: Path) -> None:
    # A private deployment, so the session one keeps its primary where it is.
    deployment = SentinelDeployment(tmp_path).start()
    try:
        with deployment.sentinel.client() as s:
            assert s.execute_command("SENTINEL", "FAILOVER", "mymaster")

        def promoted() -> bool:
            return deployment.primary_address() == ("127.0.0.1", deployment.replica.port)

        deadline = time.monotonic() + 20
        while not promoted():
            assert time.monotonic() < deadline, deployment.sentinel.log_tail()
            time.sleep(0.05)
        assert deployment.current_primary() is deployment.replica

        with deployment.replica.client() as new_primary:
            deadline = time.monotonic() + 20
            while True:  # the promoted replica accepts writes once it is a master
                try:
                    new_primary.set("after-failover", 1)
                    break
                except redis.ReadOnlyError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            deployment.flush()
            assert new_primary.dbsize() == 0
    finally:
        deployment.stop()


# ------------------------------------------------------------ error reports


def test_failed_start_names_the_server_and_shows_its_log(tmp_path: Path) -> None:
    server = RedisServer("broken", tmp_path, extra_args=["--no-such-directive", "1"])
    with pytest.raises(HarnessError) as excinfo:
        server.start()
    message = str(excinfo.value)
    assert "'broken'" in message
    assert f"127.0.0.1:{server.port}" in message
    assert "exited with code 1" in message
    assert "no-such-directive" in message  # from redis-server's own log output
    assert not server.is_running


def test_port_already_in_use_is_reported(redis_server: RedisServer, tmp_path: Path) -> None:
    clash = RedisServer("clash", tmp_path, port=redis_server.port)
    with pytest.raises(HarnessError, match=r"(?s)'clash'.*Address already in use"):
        clash.start()
    assert not clash.is_running


def test_a_port_taken_before_start_is_replaced(tmp_path: Path) -> None:
    server = RedisServer("raced", tmp_path)
    squatted = server.port
    with socket.socket() as squatter:  # another process grabs the port first
        squatter.bind(("127.0.0.1", squatted))
        squatter.listen()
        try:
            server.start()
            assert server.port != squatted
            assert server.starts == 2
            assert "Address already in use" in server.log_path.read_text()
            with server.client() as c:
                assert int(c.info("server")["process_id"]) == server.pid
        finally:
            server.stop()


def test_free_port_reserves_the_cluster_bus_port() -> None:
    port = free_port(cluster_bus=True)
    assert port + CLUSTER_BUS_OFFSET <= 65535
    assert free_port() not in (port, port + CLUSTER_BUS_OFFSET)


def test_session_servers_are_stopped_even_when_tests_fail(tmp_path: Path) -> None:
    """Runs a tiny failing session in a child pytest and checks nothing survives it."""
    pid_file = tmp_path / "pids.txt"
    test_file = tmp_path / "test_child.py"
    test_file.write_text(
        textwrap.dedent(
            f"""
            def test_uses_servers(redis_server, killable_server):
                with open({str(pid_file)!r}, "w") as f:
                    f.write(f"{{redis_server.pid}} {{killable_server.pid}}")
                assert False, "deliberate failure"
            """
        )
    )
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\nfilterwarnings = error\n")
    # Only pytest itself plus our conftest (as a plugin): no entry-point plugins.
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(tmp_path),
         "-p", "conftest", "-p", "no:cacheprovider", "-q",
         "--basetemp", str(tmp_path / "bt"), str(test_file)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "deliberate failure" in proc.stdout
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == 2
    for pid in pids:
        assert not pid_alive(pid), f"redis-server pid {pid} outlived the session"


def test_a_hung_test_ends_the_run_and_leaves_every_stack_in_a_file(tmp_path: Path) -> None:
    """The watchdog of the interrupt tests: a deadlock ends the process with status 1 and
    the stacks in REDIS_CONN_HANG_DIR (pytest's capture of stderr would die with it)."""
    tests = Path(__file__).parent
    script = textwrap.dedent(
        f"""
        import sys, threading
        sys.path.insert(0, {str(tests)!r})
        from servers import hang_watchdog

        with hang_watchdog(60, "quick"):  # ends in time: its file is removed
            pass
        with hang_watchdog(0.5, "tests/test_x.py::test_stuck"):
            lock = threading.Lock()
            lock.acquire()
            lock.acquire()  # a deadlock
        """
    )
    env = {**os.environ, "REDIS_CONN_HANG_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    (left,) = list(tmp_path.iterdir())
    assert left.name.startswith("redis_conn-hang-")
    stacks = left.read_text()
    assert stacks.startswith("tests/test_x.py::test_stuck took more than 0.5 s; every thread")
    assert 'File "<string>", line 11 in <module>' in stacks, stacks  # the second acquire
