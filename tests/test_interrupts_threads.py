"""CONTRACT sections 6 and 10: interrupts in one thread while other threads share the pool.

Two worker threads and the main thread share a pool of three connections. Every operation
checks its own reply: an ECHO of a token only its caller knows, a transaction whose replies
are its own, a GET of a value only it wrote. The main thread takes well over a thousand
exceptions from a real SIGALRM handler at random points (mid-handshake, mid-read, inside a
release, inside a pipeline's reset); the workers are never interrupted. Any reply that
belongs to someone else (a HELLO map, an ``OK``, ``[OK, QUEUED]``, another caller's token),
in any thread, is a failure; so is an exception in a worker that is not one of the errors
section 6 allows (a pool wait that timed out, a write whose outcome is unknown).
"""

from __future__ import annotations

import gc
import itertools
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from redis_conn import ConnectionRegistry, OutcomeUnknown, PoolExhausted

try:
    from servers import RedisServer, hang_watchdog
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import RedisServer, hang_watchdog

INTERRUPTS = 1200


class Interrupted(BaseException):
    """What the SIGALRM handler raises: like a job timeout, not an Exception."""


@pytest.fixture
def alarms(request: pytest.FixtureRequest) -> Iterator[list[int]]:
    fired = [0]

    def handler(signum: int, frame: Any) -> None:
        fired[0] += 1
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        with hang_watchdog(240, request.node.nodeid):  # a hang fails with every stack
            yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def quiet_finalizers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """An alarm inside a finalizer cannot propagate; Python reports it to the unraisable
    hook. pytest's hook would keep every such traceback (and the connections its frames
    hold) until the test ends; this one only counts them."""
    dropped: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda args: dropped.append(args.exc_type.__name__))
    return dropped


class Checker:
    """One thread's operations, each checking that its reply is its own."""

    def __init__(self, client: Any, who: str, wrong: list[str], seed: int) -> None:
        self.client = client
        self.who = who
        self.wrong = wrong
        self.pick = random.Random(seed)
        self.tokens = itertools.count()

    def token(self) -> str:
        return f"{self.who}-{next(self.tokens)}"

    def one(self) -> None:
        choice = self.pick.randrange(4)
        if choice == 0:
            token = self.token()
            if (got := self.client.echo(token)) != token.encode():
                self.wrong.append(f"{self.who}: ECHO {token} -> {got!r:.80}")
        elif choice == 1:
            token = self.token()
            with self.client.pipeline(transaction=True) as pipe:
                pipe.set(f"own:{self.who}", token)
                pipe.get(f"own:{self.who}")
                pipe.echo(token)
                got = pipe.execute()
            if got != [True, token.encode(), token.encode()]:
                self.wrong.append(f"{self.who}: transaction -> {got!r:.80}")
        elif choice == 2:
            token = self.token()
            if self.client.set(f"key:{self.who}", token) is not True:
                self.wrong.append(f"{self.who}: SET -> not True")
            elif (got := self.client.get(f"key:{self.who}")) != token.encode():
                self.wrong.append(f"{self.who}: GET -> {got!r:.80}")
        else:
            token = self.token()
            with self.client.pipeline(transaction=False) as pipe:
                pipe.echo(token)
                pipe.echo(token + "!")
                got = pipe.execute()
            if got != [token.encode(), (token + "!").encode()]:
                self.wrong.append(f"{self.who}: pipeline -> {got!r:.80}")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # sockets an alarm orphaned mid-connect
def test_interrupts_in_one_thread_never_give_another_thread_a_wrong_reply(
    redis_server: RedisServer, alarms: list[int], quiet_finalizers: list[str]
) -> None:
    registry = ConnectionRegistry(
        {"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 3, "POOL_TIMEOUT": 2}}
    )
    client = registry.get()
    wrong: list[str] = []
    unexpected: list[str] = []
    stop = threading.Event()
    done = [0, 0]

    def worker(index: int) -> None:
        checker = Checker(client, f"worker{index}", wrong, seed=index)
        while not stop.is_set():
            try:
                checker.one()
                done[index] += 1
            except (PoolExhausted, OutcomeUnknown):
                pass  # allowed by section 6: a wait timed out, a write's outcome is unknown
            except Exception as exc:  # anything else is a reply or a state that was not ours
                unexpected.append(f"worker{index}: {type(exc).__name__}: {exc}"[:200])

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in (0, 1)]
    for thread in workers:
        thread.start()
    main = Checker(client, "main", wrong, seed=99)
    rng = random.Random(7)
    deadline = time.monotonic() + 150
    try:
        while alarms[0] < INTERRUPTS and time.monotonic() < deadline:
            try:
                signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.00002, 0.0008))
                try:
                    main.one()
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except Interrupted:
                pass
            except (PoolExhausted, OutcomeUnknown):
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        stop.set()
        for thread in workers:
            thread.join(timeout=60)
    try:
        print(
            f"\nFIGURE thread_interrupts = {alarms[0]}, worker operations {sum(done)}, "
            f"in finalizers {len(quiet_finalizers)}"
        )
        assert not any(thread.is_alive() for thread in workers), "a worker hung"
        assert alarms[0] >= INTERRUPTS
        assert min(done) > 100, done  # the workers really ran alongside
        assert wrong == []
        assert unexpected == []
        # And afterwards every thread's replies are its own, and all three places lend.
        for checker in (Checker(client, f"after{i}", wrong, seed=i) for i in range(20)):
            checker.one()
        assert wrong == []
        pool = client.connection_pool
        held = [pool.get_connection() for _ in range(3)]
        with pytest.raises(PoolExhausted):
            pool.get_connection()
        for connection in held:
            pool.release(connection)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        registry.close_all()
