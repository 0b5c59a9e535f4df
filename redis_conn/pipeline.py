"""Pipelines after RedPipe: every command returns a Future, one batch per backend per execute.

A *root* pipeline owns the queue. Commands are grouped by backend (the resolved connection, so
aliases share a batch), and ``execute()`` sends each backend's batch in one round trip: the
calling thread sends one batch itself, a small pool of threads per backend sends the others, and
every batch finishes before any error is raised. A *nested* pipeline (``pipeline(parent)``)
queues straight into its root, in call order, and only decides what happens to its own commands
when its block ends: kept (``execute()`` or ``autocommit``) or discarded. Nested pipelines never
do I/O, so a sync pipeline can nest in an asyncio root (:mod:`redis_conn.async_pipeline`) and
the other way round.

Batches are sent with redis-py's own packing and reply parsing (``Redis.parse_response``, so
response callbacks and ``decode_responses`` behave as on the plain client), but without its
pipeline retry: a batch is sent exactly once. A connection interrupted between replies is
closed, never pooled with replies still owed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from redis.cluster import RedisCluster
from redis.commands import CoreCommands
from redis.exceptions import (
    ExecAbortError,
    MovedError,
    RedisClusterException,
    ResponseError,
)

from redis_conn import messages
from redis_conn.cluster import send_cluster_batch
from redis_conn.futures import Future, Work
from redis_conn.internals import EMPTY_RESPONSE
from redis_conn.pools import fork_generation
from redis_conn.registry import ConnectionRegistry, current_registry
from redis_conn.settling import (
    fail_unanswered,
    fail_unsettled,
    interrupted,
    raise_failures,
    settle_replies,
    settle_transaction,
    settle_unsent_empty,
)

__all__ = ["Future", "Pipeline", "PipelineBase", "pipeline"]

P = TypeVar("P", bound="PipelineBase")


class _Batch:
    """The commands queued for one backend since the last execute, in call order."""

    __slots__ = ("connection", "futures")

    def __init__(self, connection: str) -> None:
        self.connection = connection  # the first name queued on it, as the user wrote it
        self.futures: list[Future[Any]] = []


class Root:
    """What a root pipeline and everything nested in it share; nothing is shared across roots."""

    __slots__ = ("batches", "is_async", "lock", "registry", "transaction")

    def __init__(self, registry: ConnectionRegistry, *, transaction: bool, is_async: bool) -> None:
        self.registry = registry
        self.transaction = transaction
        self.is_async = is_async
        self.batches: dict[str, _Batch] = {}
        self.lock = threading.Lock()

    def batch(self, name: str) -> _Batch:
        backend = self.registry.resolve(name)  # ConnectionNotFound now, not at execute
        batch = self.batches.get(backend)
        if batch is None:
            with self.lock:
                batch = self.batches.setdefault(backend, _Batch(name))
        return batch

    def take(self) -> Work:
        """Empty the queue: (connection name, futures) per backend that has commands."""
        with self.lock:
            work = []
            for batch in self.batches.values():
                if batch.futures:
                    work.append((batch.connection, batch.futures))
                    batch.futures = []
        return work

    def remove(self, futures: list[Future[Any]], reason: str) -> None:
        """Take some queued commands back out (a nested block ended without committing)."""
        dropped = {id(future) for future in futures if not future.done()}
        if not dropped:
            return
        with self.lock:
            for batch in self.batches.values():
                batch.futures = [f for f in batch.futures if id(f) not in dropped]
        for future in futures:
            if not future.done():
                future._discard(reason)

    def queued(self) -> int:
        return sum(len(batch.futures) for batch in self.batches.values())


class _NotInPipelines:
    """A redis-py client method that has no meaning in a deferred batch."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why

    def __get__(self, instance: object, owner: type | None = None) -> NoReturn:
        raise AttributeError(f"{self.name}() is not available on a redis_conn pipeline: {self.why}")


_NEEDS_REPLY = "it needs each reply before sending the next command; call it on get_redis(name)."
_CONNECTION_STATE = (
    "it changes the state of a pooled connection; configure it in REDIS_CONNECTIONS instead."
)
_WATCH = "WATCH needs replies before MULTI; use transaction=True, or get_redis(name).pipeline()."
_NOT_IN_PIPELINES = {
    "scan_iter": _NEEDS_REPLY,
    "sscan_iter": _NEEDS_REPLY,
    "hscan_iter": _NEEDS_REPLY,
    "zscan_iter": _NEEDS_REPLY,
    "watch": _WATCH,
    "unwatch": _WATCH,
    "shutdown": "SHUTDOWN has no reply to settle a Future with.",
    "register_script": (
        "register the script on get_redis(name) and queue p.evalsha(sha, ...) or p.eval(...)."
    ),
    "digest_local": "it is not a Redis command; call it on get_redis(name).",
    **dict.fromkeys(
        [
            "select",
            "auth",
            "hello",
            "quit",
            "reset",
            "client_reply",
            "client_tracking",
            "client_tracking_on",
            "client_tracking_off",
            "readonly",
            "readwrite",
            "himport_set",
            "himport_prepare_internal",
            "himport_discard_internal",
            "himport_discard_all_internal",
        ],
        _CONNECTION_STATE,
    ),
}

if TYPE_CHECKING:
    # redis-py types each command as "value or awaitable"; in a pipeline it is a Future,
    # which PipelineBase.__getattr__ tells the type checker.
    class _CommandMethods:
        pass

else:
    _CommandMethods = CoreCommands


class PipelineBase(_CommandMethods):
    """Queueing, nesting and discarding, shared by :class:`Pipeline` and the asyncio twin.

    Every redis-py command method (``set``, ``hgetall``, ``blpop``...) queues the command and
    returns a :class:`Future`. ``p[name]`` is the same pipeline, queueing on another connection.
    """

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Callable[..., Future[Any]]: ...

    def __init__(
        self,
        root: Root,
        name: str,
        *,
        parent: PipelineBase | None,
        pending: list[Future[Any]] | None,
        autocommit: bool,
    ) -> None:
        self._root = root
        self._name = name
        self._batch = root.batch(name)
        self._parent = parent
        # None for the root (the queue is its own); a nested pipeline lists the commands it
        # queued that its block has not yet kept or discarded.
        self._pending = pending
        self._autocommit = autocommit

    def execute_command(self, *args: Any, **options: Any) -> Future[Any]:
        """Queue a raw command (``p.execute_command("SET", "k", "v")``); returns its Future."""
        future: Future[Any] = Future(self._name, args, options)
        # One append each: a hand-off to another thread never sees half a command.
        self._batch.futures.append(future)
        if self._pending is not None:
            self._pending.append(future)
        return future

    def __getitem__(self: P, name: str) -> P:
        """This pipeline, queueing on connection ``name`` (same queue, same execute)."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._name = name
        view._batch = self._root.batch(name)
        return view

    def discard(self) -> None:
        """Drop what this pipeline queued and has not sent; nothing of it will be sent.

        The dropped futures settle at once: their ``.result`` raises :class:`ResultNotReady`
        saying they were discarded, so nothing waits forever on them.
        """
        self._drop("discard() was called")

    def __len__(self) -> int:
        """Commands queued here and not yet sent (root) or not yet kept (nested)."""
        if self._pending is None:
            return self._root.queued()
        return sum(1 for future in self._pending if not future.done())

    def __bool__(self) -> bool:
        # An empty pipeline is still a pipeline: keep ``pipe or default`` from misfiring.
        return True

    def __repr__(self) -> str:
        kind = "root" if self._pending is None else "nested"
        return f"<{type(self).__name__} {kind} {self._name!r} queued={len(self)}>"

    # -- helpers some redis-py command methods call on their client --------------------------

    def get_encoder(self) -> Any:
        return self._root.registry.get(self._name).get_encoder()

    def get_connection_kwargs(self) -> Any:
        return self._root.registry.get(self._name).get_connection_kwargs()

    # -- what the with blocks share ---------------------------------------------------------

    def _commit(self) -> None:
        """A nested pipeline keeps its commands: they are now its parent's to keep or drop."""
        pending = self._pending
        assert pending is not None and self._parent is not None
        parent_pending = self._parent._pending
        if parent_pending is not None:
            parent_pending.extend(future for future in pending if not future.done())
        pending.clear()

    def _drop(self, reason: str) -> None:
        if self._pending is None:
            for _, futures in self._root.take():
                for future in futures:
                    future._discard(reason)
        else:
            pending = list(self._pending)
            self._pending.clear()
            self._root.remove(pending, reason)

    def _close_block(self, raised: bool) -> bool:
        """End of a with block: True if the caller should execute (autocommit root)."""
        if raised:
            self._drop("an exception was raised in its pipeline's with block")
            return False
        if self._autocommit:
            if self._pending is None:
                return True
            self._commit()
        else:
            self._drop("its pipeline's with block ended without execute()")
        return False

    def __setitem__(self, key: Any, value: Any) -> NoReturn:
        raise TypeError("p[name] selects a connection; queue p.set(key, value) instead.")

    def __delitem__(self, key: Any) -> NoReturn:
        raise TypeError("p[name] selects a connection; queue p.delete(key) instead.")

    def __contains__(self, key: Any) -> NoReturn:
        raise TypeError("'key in pipeline' needs a reply now; queue p.exists(key) instead.")


for _method, _why in _NOT_IN_PIPELINES.items():
    setattr(PipelineBase, _method, _NotInPipelines(_method, _why))


class Pipeline(PipelineBase):
    """A pipeline for synchronous code; see :func:`pipeline`."""

    def execute(self) -> None:
        """Root: send what was queued since the last execute, one batch per backend.

        Every backend's batch runs to the end (concurrently when there are several), then every
        future is settled, then :class:`PipelineError` is raised if anything failed.
        Nested: keep this pipeline's commands; they are sent when the root executes.
        """
        if self._pending is not None:
            self._commit()
            return
        if self._root.is_async:
            raise TypeError("This pipeline's root is asynchronous: await its execute().")
        work = self._root.take()
        if work:
            raise_failures(work, _send_all(self._root, work))

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._close_block(exc_type is not None):
            self.execute()


def pipeline(
    pipe: PipelineBase | None = None,
    *,
    name: str = "default",
    autocommit: bool = False,
    transaction: bool = False,
) -> Pipeline:
    """A pipeline on connection ``name``: a new root, or nested in ``pipe``'s root.

    ``autocommit=True``: a root executes at the end of its ``with`` block, a nested pipeline
    keeps its commands for the root. Without it, a block that ends without ``execute()``
    sends nothing. An exception in the block discards what the block queued.
    ``transaction=True`` wraps each backend's batch in MULTI/EXEC (set it on the root).
    """
    if pipe is None:
        root = Root(current_registry(), transaction=transaction, is_async=False)
        return Pipeline(root, name, parent=None, pending=None, autocommit=autocommit)
    check_parent(pipe, transaction=transaction, function="pipeline")
    return Pipeline(pipe._root, name, parent=pipe, pending=[], autocommit=autocommit)


def check_parent(pipe: object, *, transaction: bool, function: str) -> None:
    if not isinstance(pipe, PipelineBase):
        raise TypeError(
            f"{function}(pipe=...) takes a redis_conn pipeline or None, "
            f"not {type(pipe).__module__}.{type(pipe).__qualname__}."
        )
    if transaction and not pipe._root.transaction:
        raise ValueError(
            f"{function}(pipe, transaction=True): the root pipeline was created with "
            "transaction=False, so its batches are not atomic; create the root with "
            "transaction=True."
        )


# -- sending one batch (sync) ----------------------------------------------------------------


def _checkout(pool: Any) -> Any:
    return pool.get_connection()


def _send_plain(client: Any, name: str, futures: list[Future[Any]]) -> BaseException | None:
    pool = client.connection_pool
    connection = _checkout(pool)
    reading = -1  # the reply being read; -1 while sending
    try:
        connection.send_packed_command(connection.pack_commands([f._args for f in futures]))
        parse = client.parse_response
        first_error: BaseException | None = None
        for reading, future in enumerate(futures):  # noqa: B007 (read in the handler)
            try:
                future._set(parse(connection, future._args[0], **future._options))
            except ResponseError as exc:
                future._fail_command(exc)
                first_error = first_error or exc
        return first_error
    except BaseException as exc:
        # Replies may still be owed on this socket: close it rather than pool it.
        connection.disconnect()
        if reading >= 0:
            fail_unanswered(name, futures[reading:], exc)
        raise
    finally:
        pool.release(connection)


def _send_transaction(client: Any, name: str, futures: list[Future[Any]]) -> BaseException | None:
    sent = settle_unsent_empty(futures)
    if not sent:
        return None
    pool = client.connection_pool
    connection = _checkout(pool)
    reading = False
    try:
        commands = [("MULTI",), *(f._args for f in sent), ("EXEC",)]
        connection.send_packed_command(connection.pack_commands(commands))
        reading = True
        parse = client.parse_response
        parse(connection, "_")  # MULTI's OK; an error here fails the whole batch
        queue_errors: dict[int, ResponseError] = {}
        for index in range(len(sent)):
            try:
                parse(connection, "_")  # QUEUED
            except ResponseError as exc:
                queue_errors[index] = exc
        try:
            exec_reply = parse(connection, "_")
        except ExecAbortError as exc:
            exec_reply = exc
    except BaseException as exc:
        connection.disconnect()
        if reading:  # whether EXEC ran is unknown
            fail_unsettled(sent, interrupted(name, exc))
        raise
    finally:
        pool.release(connection)
    return settle_transaction(client, sent, queue_errors, exec_reply)


def _send_cluster(client: Any, futures: list[Future[Any]]) -> BaseException | None:
    # Routed by slot, MOVED/ASK followed, and nothing written sent twice: redis_conn.cluster.
    replies = send_cluster_batch(client, [(f._args, f._options) for f in futures])
    return settle_replies(futures, replies)


def _send_cluster_transaction(
    client: Any, name: str, futures: list[Future[Any]]
) -> BaseException | None:
    # redis-py's cluster transaction skips the response callbacks (SET gives b"OK", not
    # True), so MULTI/EXEC goes to the slot's primary the way a standalone batch does.
    slots = {client.determine_slot(*f._args) for f in futures if EMPTY_RESPONSE not in f._options}
    if len(slots) > 1:
        raise RedisClusterException(
            f"{messages.prefix(name)}a cluster transaction must keep all its keys in one "
            f"hash slot, this batch spans {len(slots)}; give the keys one hash tag ({{user1}})."
        )
    if not slots:
        return _send_transaction(client, name, futures)  # only locally answered commands
    node = client.nodes_manager.get_node_from_slot(slots.pop())
    error = _send_transaction(client.get_redis_connection(node), name, futures)
    if isinstance(error, MovedError):
        client.nodes_manager.initialize()  # the slot moved: the next batch finds its node
    return error


def send_batch(root: Root, name: str, futures: list[Future[Any]]) -> BaseException | None:
    """Send one backend's batch and settle all its futures; return its error, if any."""
    try:
        client = root.registry.get(name)
        if isinstance(client, RedisCluster):
            if root.transaction:
                return _send_cluster_transaction(client, name, futures)
            return _send_cluster(client, futures)
        cache = getattr(client, "client_cache", None)
        try:
            if root.transaction:
                return _send_transaction(client, name, futures)
            return _send_plain(client, name, futures)
        finally:
            if cache is not None:  # CLIENT_CACHE: the batch's writes drop local copies
                cache.wrote_all(f._args for f in futures)
    except Exception as exc:
        fail_unsettled(futures, exc)
        return exc
    except BaseException as exc:  # KeyboardInterrupt: settle, then let it through
        fail_unsettled(futures, interrupted(name, exc))
        raise


# -- running the batches -----------------------------------------------------------------------


class _BackendThreads:
    """Threads that send the second and further batches of an execute: a small pool per backend.

    Per backend, so that a backend that hangs ties up only its own threads and pipelines that
    do not use it never queue behind it (CONTRACT section 6). A backend gets at most as many
    threads as it has connections (a batch needs one) and :attr:`max_workers`; they are made
    on first need, and a forked child makes its own. ``max_workers = 0`` sends batches one
    after another in the calling thread (the tests use it).
    """

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self._lock = threading.Lock()

    def for_backend(self, client: Any, name: str, limit: int) -> ThreadPoolExecutor | None:
        if self.max_workers <= 0:
            return None
        held = getattr(client, "_redis_conn_threads", None)
        if held is None or held[0] != fork_generation[0]:
            with self._lock:
                held = getattr(client, "_redis_conn_threads", None)
                if held is None or held[0] != fork_generation[0]:
                    threads = ThreadPoolExecutor(
                        max_workers=max(1, min(limit, self.max_workers)),
                        thread_name_prefix=f"redis_conn-pipeline-{name}",
                    )
                    held = (fork_generation[0], threads)
                    client._redis_conn_threads = held
        executor: ThreadPoolExecutor = held[1]
        return executor

    def forget(self) -> None:
        self._lock = threading.Lock()


_threads = _BackendThreads(32)
os.register_at_fork(after_in_child=_threads.forget)


def _send_all(root: Root, work: Work) -> list[BaseException | None]:
    if len(work) == 1 or _threads.max_workers <= 0:  # no thread hop at all
        return _send_one_by_one(root, work)
    others: list[tuple[int, ConcurrentFuture[BaseException | None]]] = []
    here = [0]
    for index in range(1, len(work)):
        name, futures = work[index]
        executor = _backend_threads(root, name)
        try:
            if executor is not None:
                others.append((index, executor.submit(send_batch, root, name, futures)))
                continue
        except RuntimeError:  # the interpreter is shutting down: no new threads
            pass
        here.append(index)
    errors: list[BaseException | None] = [None] * len(work)
    try:
        done = _send_one_by_one(root, [work[i] for i in here])
        for index, error in zip(here, done, strict=True):
            errors[index] = error
    finally:
        wait_all([f for _, f in others])  # even when interrupted: never raise while batches run
    for index, future in others:
        errors[index] = future.result()
    return errors


def _backend_threads(root: Root, name: str) -> ThreadPoolExecutor | None:
    try:
        client = root.registry.get(name)
        limit = root.registry.spec(name).max_connections
    except Exception:  # send_batch reports it, in the calling thread
        return None
    return _threads.for_backend(client, root.registry.resolve(name), limit)


def _send_one_by_one(root: Root, work: Work) -> list[BaseException | None]:
    errors: list[BaseException | None] = []
    interrupt: BaseException | None = None
    for name, futures in work:
        try:
            errors.append(send_batch(root, name, futures))
        except BaseException as exc:  # as with threads: the other backends still run
            interrupt = interrupt or exc
            errors.append(None)
    if interrupt is not None:
        raise interrupt
    return errors
