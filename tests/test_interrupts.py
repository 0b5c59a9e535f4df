"""CONTRACT section 6, "an interrupt anywhere is harmless", "backends are isolated", "fair waiting".

Interrupts are real exceptions raised from a real SIGALRM handler (as a job-timeout library
does) or KeyboardInterrupt, at fixed points (just after a command's bytes left, while waiting
for a free connection, during the connection handshake) and at random points, a thousand
times over. After each, the next caller must read its own reply, and the pool must still lend
MAX_CONNECTIONS connections and then refuse with PoolExhausted instead of hanging.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_conn import ConnectionRegistry, OutcomeUnknown, PipelineError, PoolExhausted
from redis_conn.pipeline import pipeline
from redis_conn.registry import connections

try:
    from fault_proxy import FaultProxy
    from servers import RedisServer, finish_within, hang_watchdog, wait_until
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.fault_proxy import FaultProxy
    from tests.servers import RedisServer, finish_within, hang_watchdog, wait_until


class Interrupted(BaseException):
    """What the SIGALRM handler raises: like a job timeout, not an Exception."""


@pytest.fixture
def alarm() -> Iterator[Callable[[float], None]]:
    """``alarm(seconds)`` raises :class:`Interrupted` in the main thread after ``seconds``."""
    fired = [0]

    def handler(signum: int, frame: Any) -> None:
        fired[0] += 1
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, handler)

    def arm(seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, seconds)

    arm.fired = fired  # type: ignore[attr-defined]
    try:
        yield arm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def watchdog(request: pytest.FixtureRequest) -> Iterator[None]:
    """A hang is a failure with every thread's stack, not a stuck CI run."""
    with hang_watchdog(120, request.node.nodeid):
        yield


def lends_exactly(client: Any, count: int) -> None:
    """The pool lends ``count`` connections, then refuses once POOL_TIMEOUT is out (it never
    hangs: a wait that does not end within 4 x POOL_TIMEOUT + 10 s fails the test)."""
    pool = client.connection_pool
    held = [pool.get_connection() for _ in range(count)]
    try:
        refusal = finish_within(
            pool.get_connection,
            4 * pool.pool_timeout + 10,
            lambda: f"a borrower of a full pool (POOL_TIMEOUT={pool.pool_timeout}) still waits",
        )
        assert isinstance(refusal.error, PoolExhausted), refusal.error
        assert refusal.seconds >= pool.pool_timeout  # it waited its turn out, no less
        for connection in held:  # each one works and answers for itself
            connection.send_command("ECHO", f"mine-{id(connection)}")
            assert connection.read_response() == f"mine-{id(connection)}".encode()
    finally:
        for connection in held:
            pool.release(connection)
    assert pool.usage().in_use == 0


# -- interrupts at fixed points ------------------------------------------------------------


def test_an_interrupt_just_after_the_bytes_left_never_poisons_the_pool(
    redis_server: RedisServer,
) -> None:
    registry = ConnectionRegistry({"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 1}})
    client = registry.get()
    try:
        client.set("theirs", "THEIR REPLY")
        client.set("mine", "my reply")
        (connection,) = [client.connection_pool.get_connection()]
        client.connection_pool.release(connection)

        def send_then_interrupt(command: Any, check_health: bool = True) -> None:
            type(connection).send_packed_command(connection, command, check_health)
            raise KeyboardInterrupt  # the command is on the wire; nobody will read its reply

        connection.send_packed_command = send_then_interrupt
        with pytest.raises(KeyboardInterrupt):
            client.get("theirs")
        del connection.send_packed_command
        assert client.get("mine") == b"my reply"  # the same, only connection: not "THEIR REPLY"
        lends_exactly(client, 1)
    finally:
        registry.close_all()


def test_an_interrupt_while_waiting_for_a_connection_leaks_nothing(
    redis_server: RedisServer, alarm: Callable[[float], None], watchdog: None
) -> None:
    registry = ConnectionRegistry(
        {"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 2, "POOL_TIMEOUT": 2}}
    )
    client = registry.get()
    pool = client.connection_pool
    try:
        held = [pool.get_connection() for _ in range(2)]
        for _ in range(20):
            alarm(0.01)
            with pytest.raises(Interrupted):
                client.get("k")  # waits for a free connection; the alarm cuts the wait
            assert pool.usage().waiting == 0
        for connection in held:
            pool.release(connection)
        lends_exactly(client, 2)
    finally:
        registry.close_all()


def test_an_interrupt_during_the_handshake_leaks_nothing(
    killable_server: RedisServer, alarm: Callable[[float], None], watchdog: None
) -> None:
    registry = ConnectionRegistry(
        {"default": {"URL": killable_server.url, "MAX_CONNECTIONS": 2, "POOL_TIMEOUT": 1}}
    )
    client = registry.get()
    try:
        killable_server.pause()  # connect succeeds, HELLO gets no answer
        for _ in range(4):
            alarm(0.05)
            with pytest.raises(Interrupted):
                client.get("k")
        killable_server.resume()
        client.set("k", "v")
        assert client.get("k") == b"v"
        lends_exactly(client, 2)
    finally:
        killable_server.resume()
        registry.close_all()


# -- a thousand interrupts at random points ---------------------------------------------------


STORM = Path(__file__).parent / "interrupt_storm.py"


@pytest.mark.slow
def test_a_thousand_random_interrupts_give_no_wrong_reply_and_leak_nothing(
    tmp_path: Path,
) -> None:
    """1,000 exceptions raised by a SIGALRM handler at random points of GET, MGET, SET and
    pipelines, under contention from two threads: no wrong reply, nothing leaked. Run in a
    pytest process of its own, with its own redis-server (``interrupt_storm.py`` says why); a
    hang there fails this test with the child's stacks."""
    env = {**os.environ, "REDIS_CONN_HANG_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "pytest", str(STORM), "-q", "-s", "-p", "no:cacheprovider"]
    try:
        done = subprocess.run(
            command, cwd=STORM.parent.parent, env=env, capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the storm did not end within 300 s:\n{exc.stdout!s:.4000}")
    hangs = sorted(tmp_path.glob("redis_conn-hang-*.txt"))
    assert not hangs, hangs[0].read_text()
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    figure = re.search(r"FIGURE random_interrupts = (\d+), in finalizers (\d+)", done.stdout)
    assert figure is not None, done.stdout[-3000:]
    print(f"\n{figure[0]}")
    assert int(figure[1]) >= 1000


def test_random_cancellations_of_async_tasks_give_no_wrong_reply(
    redis_server: RedisServer, watchdog: None
) -> None:
    registry = ConnectionRegistry({"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 5}})
    keys = [f"akey-{i}" for i in range(50)]

    async def scenario() -> tuple[int, int, list[str]]:
        client = registry.get_async()
        await client.mset({key: f"value-of-{key}" for key in keys})
        wrong: list[str] = []
        rng = random.Random(99)

        async def read(key: str) -> None:
            got = await client.get(key)
            if got != f"value-of-{key}".encode():
                wrong.append(f"{key} -> {got!r}")

        # Cut tasks after a random part of the time a wave takes on this machine, now, so
        # that some are cancelled before their reply and some get it, however busy it is.
        began = time.monotonic()
        await asyncio.gather(*(read(rng.choice(keys)) for _ in range(100)))
        wave = time.monotonic() - began
        outcomes: list[Any] = []
        for _ in range(20):
            outcomes += await asyncio.gather(
                *(
                    asyncio.wait_for(read(rng.choice(keys)), rng.uniform(0.0, 1.5 * wave))
                    for _ in range(100)
                ),
                return_exceptions=True,
            )
        cancelled = sum(isinstance(o, TimeoutError | asyncio.TimeoutError) for o in outcomes)
        pool = client.connection_pool
        held = [await pool.get_connection() for _ in range(5)]
        with pytest.raises(PoolExhausted):
            await pool.get_connection()
        for connection in held:
            await pool.release(connection)
        for key in keys:
            await read(key)
        await registry.aclose_async()
        return cancelled, len(outcomes), wrong

    cancelled, total, wrong = asyncio.run(scenario())
    # A transport that a cancellation orphaned inside asyncio or redis-py (mid-connect) is
    # closed by its finalizer: let that happen here, not in a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    print(f"\nFIGURE async_cancellations = {cancelled} of {total}")
    assert 10 <= cancelled <= total - 10  # many cut mid-way, many answered
    assert wrong == []


# -- isolation, fairness, closing under load --------------------------------------------------


def test_a_hung_backend_never_delays_pipelines_that_do_not_use_it(
    redis_server: RedisServer, redis_server_b: RedisServer, killable_server: RedisServer
) -> None:
    # The hung server stays stopped until the healthy pipelines are done, and its socket
    # timeout is longer than any wait below: a healthy pipeline that waited on a hung one
    # could only finish after the server is resumed, which the test notices.
    connections.configure(
        {
            "a": {"URL": redis_server.url},
            "c": {"URL": redis_server_b.url},
            "hung": {"URL": killable_server.url, "SOCKET_TIMEOUT": 120, "RETRY": 0},
        }
    )
    hung_pool = connections.get("hung").connection_pool
    stuck: list[threading.Thread] = []
    try:
        connections.get("hung").ping()
        killable_server.pause()
        hung_done = threading.Event()

        def over_the_hung_one() -> None:
            try:
                with pipeline(name="a") as p:
                    p.get("x"), p["hung"].get("x")
                    p.execute()
            except PipelineError:
                pass
            finally:
                hung_done.set()

        stuck = [threading.Thread(target=over_the_hung_one) for _ in range(10)]
        for thread in stuck:
            thread.start()
        wait_until(  # every one of them is waiting for the stopped server's reply
            lambda: hung_pool.usage().in_use == 10,
            30,
            lambda: f"10 pipelines waiting on the hung server; {hung_pool.usage()}",
        )

        def healthy_pipelines() -> None:
            for _ in range(20):
                with pipeline(name="a") as p:
                    first, second = p.set("x", 1), p["c"].set("y", 2)
                    p.execute()
                assert (first.result, second.result) == (True, True)

        healthy = finish_within(
            healthy_pipelines, 60, lambda: "20 pipelines on healthy servers, while one hangs"
        )
        assert healthy.error is None, healthy.error
        # Every healthy pipeline finished while the hung ones were still waiting on the server.
        assert not hung_done.is_set()
    finally:
        killable_server.resume()
        for thread in stuck:
            thread.join(timeout=30)
        connections.configure(None)


def test_a_blocking_pool_serves_waiters_in_arrival_order(redis_server: RedisServer) -> None:
    registry = ConnectionRegistry(
        {"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 1, "POOL_TIMEOUT": 10}}
    )
    client = registry.get()
    pool = client.connection_pool
    served: list[int] = []
    try:
        held = pool.get_connection()

        def wait_my_turn(number: int) -> None:
            connection = pool.get_connection()
            served.append(number)
            pool.release(connection)

        threads = []
        for number in range(6):
            thread = threading.Thread(target=wait_my_turn, args=(number,))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 5
            while pool.usage().waiting < number + 1 and time.monotonic() < deadline:
                time.sleep(0.001)  # bounded: until this thread is queued
        # A newcomer that arrives now queues behind them, even as the connection comes back.
        pool.release(held)
        wait_my_turn(6)
        for thread in threads:
            thread.join(timeout=10)
        assert served == [0, 1, 2, 3, 4, 5, 6]
    finally:
        registry.close_all()


def test_configure_and_close_all_while_other_threads_run_commands(
    redis_server: RedisServer,
) -> None:
    settings = {"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 4}}
    connections.configure(settings)
    failures: list[BaseException] = []
    stop = threading.Event()
    done = [0]

    def work(number: int) -> None:
        key = f"busy-{number}"
        while not stop.is_set():
            try:
                client = connections.get()
                client.set(key, number)
                assert client.get(key) == str(number).encode()
                with pipeline() as p:
                    value = p.get(key)
                    p.execute()
                assert value.result == str(number).encode()
                done[0] += 1
            except BaseException as exc:
                failures.append(exc)
                return

    workers = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    try:
        for worker in workers:
            worker.start()
        for round_number in range(60):
            if round_number % 2:
                connections.close_all()
            else:
                connections.configure(settings)
            before, deadline = done[0], time.monotonic() + 10
            while done[0] == before and not failures and time.monotonic() < deadline:
                time.sleep(0.001)  # bounded: until some work completed since the close
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
        connections.configure(None)
    assert failures == []
    assert done[0] > 60
    with redis_server.client() as raw:  # nothing leaked: only the raw client is connected
        assert len(raw.client_list()) == 1


def test_a_big_batch_cut_while_sending_says_commands_may_have_run(
    redis_server: RedisServer,
) -> None:
    with FaultProxy(("127.0.0.1", redis_server.port)) as proxy:
        connections.configure({"default": {"URL": proxy.url, "RETRY": 3}})
        try:
            connections.get().ping()
            proxy.cut_request_after(b"SET", 64 * 1024)  # the server sees only the start
            value = "v" * 10_000
            with pipeline() as p:
                futures = [p.set(f"big-{i}", value) for i in range(2_000)]  # 20 MB
                with pytest.raises(PipelineError) as info:
                    p.execute()
            assert "may or may not have run" in str(info.value)
            for future in futures:
                with pytest.raises(OutcomeUnknown, match="may or may not have run"):
                    future.result  # noqa: B018
        finally:
            connections.configure(None)
