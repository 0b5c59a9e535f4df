"""The thousand random interrupts of ``test_interrupts.py``, run by it in a pytest process of
their own (this file is not collected: it has no ``test_`` prefix).

A SIGALRM handler raising at random points lands wherever the main thread is, pytest's own
machinery and the interpreter's locks included (Python 3.14's ``with`` runs pending signal
handlers before a block's cleanup is in place, and its warnings lock is entered through a
Python ``__enter__``). In a process of its own, what such a signal breaks outside redis_conn
cannot stop the rest of the suite, and a hang ends this process with every thread's stack
(``hang_watchdog``), which the calling test shows.
"""

from __future__ import annotations

import contextlib
import gc
import random
import sys
import threading
import time
import warnings
from collections.abc import Callable

import pytest

from redis_conn import ConnectionRegistry, OutcomeUnknown, PipelineError, PoolExhausted
from redis_conn.pipeline import pipeline
from redis_conn.registry import connections

try:
    from servers import RedisServer
    from test_interrupts import Interrupted, alarm, lends_exactly, watchdog
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import RedisServer
    from tests.test_interrupts import Interrupted, alarm, lends_exactly, watchdog

__all__ = ["alarm", "watchdog"]  # fixtures, used by name


@pytest.fixture
def dropped_unraisable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Python's own handling of an exception raised inside a finalizer: report and drop it.

    An alarm that fires inside ``__del__`` (a vanished connection being collected) cannot
    propagate; CPython hands it to ``sys.unraisablehook``. pytest's hook keeps each one, with
    its traceback and so every frame and connection it references, until the test ends, which
    would hold lent connections alive. The default hook only prints; this one only counts.
    """
    dropped: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda args: dropped.append(args.exc_type.__name__))
    return dropped


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # sockets an alarm orphaned in redis-py
def test_a_thousand_random_interrupts(
    redis_server: RedisServer,
    alarm: Callable[[float], None],
    watchdog: None,
    dropped_unraisable: list[str],
) -> None:
    max_connections = 3
    registry = ConnectionRegistry(
        {"default": {"URL": redis_server.url, "MAX_CONNECTIONS": max_connections}}
    )
    connections_before = connections.source
    registry.source.apply_to(connections)  # pipeline() uses the process-wide registry
    client = connections.get()
    keys = [f"key-{i}" for i in range(40)]
    expected = {
        key: (f"value-of-{key}-" + ("x" * (200_000 if i % 10 == 0 else i))).encode()
        for i, key in enumerate(keys)
    }
    client.mset(expected)
    wrong: list[str] = []
    stop = threading.Event()
    rng = random.Random(1234)

    def one_operation(pick: random.Random) -> None:
        choice = pick.randrange(4)
        if choice == 0:
            key = pick.choice(keys)
            if (got := client.get(key)) != expected[key]:
                wrong.append(f"GET {key} -> {got!r:.60}")
        elif choice == 1:
            some = pick.sample(keys, 3)
            if (got := client.mget(some)) != [expected[k] for k in some]:
                wrong.append(f"MGET {some} -> {got!r:.60}")
        elif choice == 2:
            some = pick.sample(keys, 4)
            with pipeline() as p:
                futures = [p.get(k) for k in some]
                p.execute()
            if [f.result for f in futures] != [expected[k] for k in some]:
                wrong.append(f"pipeline {some}")
        else:
            key = pick.choice(keys)
            if client.set(key, expected[key]) is not True:  # the same value: reads stay valid
                wrong.append(f"SET {key}")

    def neighbour(seed: int) -> None:
        pick = random.Random(seed)
        while not stop.is_set():
            with contextlib.suppress(PoolExhausted, PipelineError):
                one_operation(pick)

    neighbours = [threading.Thread(target=neighbour, args=(s,), daemon=True) for s in (1, 2)]
    for thread in neighbours:
        thread.start()
    fired: list[int] = alarm.fired  # type: ignore[attr-defined]
    deadline = time.monotonic() + 90
    try:
        while fired[0] < 1000 and time.monotonic() < deadline:
            try:
                # One shot per arm: once it fired, nothing more can interrupt this round.
                alarm(rng.uniform(0.00002, 0.0006))
                try:
                    one_operation(rng)
                finally:
                    alarm(0)
            except Interrupted:
                pass
            except (PoolExhausted, PipelineError, OutcomeUnknown):
                pass  # a neighbour's connection was closed under a batch, or a wait timed out
    finally:
        alarm(0)
        stop.set()
        for thread in neighbours:
            thread.join(timeout=30)
    try:
        print(f"\nFIGURE random_interrupts = {fired[0]}, in finalizers {len(dropped_unraisable)}")
        assert fired[0] >= 1000
        assert wrong == []
        lends_exactly(client, max_connections)
        for key in keys:  # and every reply is still its own
            assert client.get(key) == expected[key]
        # Sockets that an alarm orphaned inside redis-py's own code (mid-connect, or in a
        # finalizer) are closed by their finalizers: let that happen here, not in a later test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    finally:
        connections_before.apply_to(connections)
        registry.close_all()
