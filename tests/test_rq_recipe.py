"""The RQ recipe of docs/cache.md: a Queue on a named connection, with real RQ and a real
server; the worker's commands and the app's share the connection's one pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rq import Queue, SimpleWorker

import redis_conn
from redis_conn import ConnectionRegistry

try:
    from servers import wait_until
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import wait_until


def add(a: int, b: int) -> int:
    return a + b


@pytest.fixture
def queues(redis_server: Any) -> Iterator[ConnectionRegistry]:
    registry = redis_conn.connections
    source = registry.source
    registry.configure({"default": {"URL": redis_server.url}, "queue": {"ALIAS": "default"}})
    yield registry
    source.apply_to(registry)


def test_a_queue_and_a_worker_on_a_named_connection(
    queues: ConnectionRegistry, redis_server: Any
) -> None:
    connection = redis_conn.get_redis("queue")
    queue = Queue("jobs", connection=connection)
    job = queue.enqueue(add, 2, 3)
    assert queue.count == 1
    worker = SimpleWorker([queue], connection=connection)
    assert worker.work(burst=True) is True
    job.refresh()
    assert job.is_finished
    assert job.return_value() == 5
    assert queue.count == 0
    # Queue, worker and app code used one pool: the "queue" alias is "default".
    assert set(queues.created_clients()) == {"default"}
    assert connection is redis_conn.get_redis("default")
    pool = connection.connection_pool
    # Two from that pool: commands, and the worker's pub/sub channel (it holds one while
    # subscribed). The channel's is closed and given back by redis-py's listener thread once
    # the worker stopped (on a busy machine, a moment later): its place is then free and
    # nothing is kept of it. The other is idle.
    wait_until(lambda: pool.usage().created == 1, 10, lambda: f"the channel's: {pool.usage()}")
    usage = pool.usage()
    assert (usage.created, usage.in_use) == (1, 0)
